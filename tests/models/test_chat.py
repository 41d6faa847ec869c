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


def test_a_string_is_chat_by_default_and_raw_when_asked(tiny_llama, tiny_gemma):
    """One default for the API and the CLI: a string is one user turn unless chat=False."""
    assert prompt_text(tiny_llama.tokenizer, GenerateRequest("The sky is", chat=False)) == "The sky is"
    chat = prompt_text(tiny_llama.tokenizer, GenerateRequest("The sky is"))
    assert "<|im_start|>user\nThe sky is<|im_end|>" in chat
    assert tiny_gemma.format_prompt("Hi?") == "<|user|>\nHi?\n<|assistant|>\n"
