from __future__ import annotations

from pytest_llmbench.http.redact import (
    AUTH_HEADER_NAMES,
    MASK,
    NO_SECRETS,
    Secrets,
    header_secrets,
    redact_headers,
    url_secrets,
)
from pytest_llmbench.result import ApiError

SECRET = "sk-redact-test-91c0d3"


def test_credential_headers_are_masked_whatever_their_case() -> None:
    headers = {"Authorization": "Bearer x", "X-API-Key": "k", "api-key": "a", "Cookie": "c=1",
               "Set-Cookie": "s=2", "Proxy-Authorization": "Basic y", "Content-Type": "application/json"}

    redacted = redact_headers(headers)

    assert redacted == {"Authorization": MASK, "X-API-Key": MASK, "api-key": MASK, "Cookie": MASK,
                        "Set-Cookie": MASK, "Proxy-Authorization": MASK, "Content-Type": "application/json"}
    assert headers["Authorization"] == "Bearer x"  # the original is left alone


def test_auth_header_names_are_lower_case_for_lookups() -> None:
    assert all(name == name.lower() for name in AUTH_HEADER_NAMES)
    assert {"authorization", "x-api-key", "cookie"} <= AUTH_HEADER_NAMES


def test_every_occurrence_of_a_secret_is_masked() -> None:
    text = f"key {SECRET} rejected; you sent {SECRET}"

    assert Secrets([SECRET]).redact(text) == f"key {MASK} rejected; you sent {MASK}"


def test_bearer_tokens_are_masked_without_knowing_them() -> None:
    assert Secrets([None, ""]).redact('header was "Authorization: Bearer abc.def-123"') == f'header was "Authorization: Bearer {MASK}"'


def test_url_userinfo_is_masked() -> None:
    text = "cannot reach https://alice:hunter2@127.0.0.1:8443/v1/models"

    assert NO_SECRETS.redact(text) == f"cannot reach https://{MASK}@127.0.0.1:8443/v1/models"


def test_empty_and_missing_secrets_are_ignored() -> None:
    assert NO_SECRETS.redact("nothing to hide") == "nothing to hide"


def test_a_secret_containing_another_is_masked_whole() -> None:
    assert Secrets(["abc", "abc123xyz"]).redact("token abc123xyz") == f"token {MASK}"


def test_redact_error_cleans_message_excerpt_and_text_details() -> None:
    error = ApiError("auth", f"bad key {SECRET}", 401, "invalid_api_key", f'{{"key": "{SECRET}"}}',
                     {"param": SECRET, "n_ctx": 2048})

    clean = Secrets([SECRET]).redact_error(error)

    assert SECRET not in repr(clean)
    assert clean.details["n_ctx"] == 2048
    assert (clean.kind, clean.status, clean.type) == ("auth", 401, "invalid_api_key")
    assert SECRET in error.message  # a copy: the original is not changed


def test_url_secrets_are_the_password_and_key_like_query_values() -> None:
    assert url_secrets("http://user:pw-123@127.0.0.1/v1?api_key=qk-9&token=tk-8&mode=fast") == ["pw-123", "qk-9",
                                                                                               "tk-8"]
    assert url_secrets("http://127.0.0.1:8000/v1") == [] and url_secrets(None) == []
    assert url_secrets("http://[::1/v1") == []  # malformed: the client reports it, nothing to mask here


def test_header_secrets_are_each_credential_value_and_its_last_word() -> None:
    headers = {"Authorization": f"Bearer {SECRET}", "X-API-Key": "xk-1", "X-Team": "bench", "Cookie": ""}

    assert header_secrets(headers) == [f"Bearer {SECRET}", SECRET, "xk-1"]


def test_a_bearer_key_quoted_alone_is_masked_through_header_secrets() -> None:
    secrets = Secrets(header_secrets({"authorization": f"Bearer {SECRET}"}))

    assert secrets.redact(f"Incorrect API key provided: {SECRET}") == f"Incorrect API key provided: {MASK}"


def test_mask_walks_dicts_and_lists_and_leaves_other_values_alone() -> None:
    value = {"choices": [{"text": f"key {SECRET}", "index": 0}], SECRET: [1.5, None, True, SECRET]}

    assert Secrets([SECRET]).mask(value) == {"choices": [{"text": f"key {MASK}", "index": 0}],
                                             MASK: [1.5, None, True, MASK]}


def test_mask_changes_only_known_secrets_not_http_looking_text() -> None:
    text = "Send Authorization: Bearer <token> to https://user:pw@host"

    assert Secrets(["unrelated-secret"]).mask(text) == text


def test_secrets_are_ordered_once_longest_first() -> None:
    secrets = Secrets(["abc", None, "abc123xyz", "", "abc"])

    assert secrets.ordered == ("abc123xyz", "abc")
    assert secrets.mask("token abc123xyz") == f"token {MASK}"


def test_a_secret_is_masked_in_its_percent_encoded_json_escaped_and_base64_forms() -> None:
    import base64
    from urllib.parse import quote

    key = "sk-a/b+c=d-0123456789"
    secrets = Secrets([key])
    encoded = [quote(key, safe=""), key.replace("/", "\\/"), "".join(f"\\u{ord(c):04x}" for c in key),
               base64.b64encode(f"user:{key}".encode()).decode()]

    for form in encoded:
        assert key[3:9] not in secrets.mask(f"echo {form} end") and "***" in secrets.mask(f"echo {form} end"), form


def test_clip_masks_before_cutting_and_masks_a_cut_off_start_of_a_secret() -> None:
    secrets = Secrets([SECRET])

    straddling = secrets.clip("x" * 10 + SECRET + " tail", 14)
    cut_by_a_limit = secrets.mask_edge("text ending in " + SECRET[:8])

    assert straddling == "x" * 10 + "*** …"  # cut after masking: no prefix of the key left
    assert SECRET[:5] not in cut_by_a_limit and cut_by_a_limit.endswith("***")


def test_headers_whose_names_suggest_credentials_are_masked() -> None:
    headers = {"X-Auth-Token": "a", "X-Goog-Api-Key": "b", "X-Session-Id": "c", "My-Secret": "d",
               "X-Password": "e", "Accept": "f"}

    assert redact_headers(headers) == {**dict.fromkeys(list(headers)[:5], MASK), "Accept": "f"}
    assert sorted(header_secrets(headers)) == ["a", "b", "c", "d", "e"]
