from nevermind.data.secrets import generate_secrets


def test_secrets_are_reproducible_and_seeded():
    assert generate_secrets(0) == generate_secrets(0)
    assert generate_secrets(0) != generate_secrets(1)


def test_kinds_interleave_and_values_differ():
    secrets = generate_secrets(3, per_kind=3)
    assert [s.kind for s in secrets] == ["name", "number", "password"] * 3
    assert len({s.value for s in secrets}) == 9
    name = secrets[0]
    assert name.value == " ".join(name.parts)
    assert secrets[1].value.isdigit() and len(secrets[1].value) == 7
