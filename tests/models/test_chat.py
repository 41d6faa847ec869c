from nevermind.models.chat import format_chat, plain_chat_format, prompt_text
from nevermind.models.requests import GenerateRequest


def test_plain_template_is_seed_001_format():
    assert plain_chat_format([{"role": "user", "content": "Hi?"}]) == "<|user|>\nHi?\n<|assistant|>\n"


def test_plain_template_keeps_system_and_turn_order():
    text = plain_chat_format(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}], add_generation_prompt=False
    )
    assert text == "<|system|>\nBe brief.\n<|user|>\nHi?\n"


def test_base_model_without_template_uses_plain_format(tiny_gemma):
    assert not tiny_gemma.tokenizer.chat_template
    assert tiny_gemma.format_prompt(GenerateRequest("Hi?", chat=True)) == "<|user|>\nHi?\n<|assistant|>\n"


def test_instruct_tokenizer_uses_its_own_template(tiny_llama):
    text = format_chat(tiny_llama.tokenizer, [{"role": "user", "content": "Hi?"}])
    assert "<|im_start|>user\nHi?<|im_end|>" in text and text.endswith("<|im_start|>assistant\n")


def test_raw_string_is_left_alone_unless_chat_is_asked(tiny_llama):
    assert prompt_text(tiny_llama.tokenizer, GenerateRequest("The sky is")) == "The sky is"
