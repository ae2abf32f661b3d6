//! Real-world positives, tricky negatives, and properties over arbitrary text.

use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::model::project::CustomRedactRule;
use crate::model::span::test_support::{make_span, text};

/// Every built-in detector, compiled once for all tests (compiling is slow in debug builds).
fn all_detectors() -> &'static Redactor {
    static REDACTOR: std::sync::OnceLock<Redactor> = std::sync::OnceLock::new();
    REDACTOR.get_or_init(|| {
        let rules: Vec<RedactRule> = DETECTORS
            .iter()
            .map(|name| RedactRule::Detector((*name).to_owned()))
            .collect();
        Redactor::new(&rules).unwrap().unwrap()
    })
}

fn redact(text: &str) -> String {
    let mut text = text.to_owned();
    all_detectors().redact_text(&mut text);
    text
}

#[test]
fn finds_real_world_personal_data() {
    let cases = [
        (
            "mail me at jane.doe+tag@example.co.uk!",
            "mail me at [REDACTED:email]!",
        ),
        (
            "From: J <j_smith@mail.example.com>",
            "From: J <[REDACTED:email]>",
        ),
        (
            "card 4111 1111 1111 1111 exp 12/29",
            "card [REDACTED:credit_card] exp 12/29",
        ),
        ("4111-1111-1111-1111", "[REDACTED:credit_card]"),
        ("amex 378282246310005.", "amex [REDACTED:credit_card]."),
        ("mc:5555555555554444", "mc:[REDACTED:credit_card]"),
        ("call +1 (555) 123-4567 now", "call [REDACTED:phone] now"),
        ("call +44 20 7946 0958", "call [REDACTED:phone]"),
        ("(555) 123-4567", "[REDACTED:phone]"),
        ("tel 555-123-4567.", "tel [REDACTED:phone]."),
        (
            "client 192.168.1.20 connected",
            "client [REDACTED:ip_address] connected",
        ),
        (
            "from 2001:db8:85a3::8a2e:370:7334 ok",
            "from [REDACTED:ip_address] ok",
        ),
        ("fe80::1ff:fe23:4567:890a", "[REDACTED:ip_address]"),
        (
            "peer=2001:0db8:85a3:0000:0000:8a2e:0370:7334;",
            "peer=[REDACTED:ip_address];",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(redact(input), expected, "{input}");
    }
}

#[test]
fn finds_secrets() {
    let cases = [
        "sk-abcdefghijklmnopqrstuvwxyz0123456789ABCD",
        "sk-proj-Ab3dE_fGh1-jKlMnOpQrStUvWxYz0123456789",
        "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-xyz",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "Bearer abcdefghijklmnop.qrstuvwx-yz0123",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "AKIAIOSFODNN7EXAMPLE",
        "ASIAY34FZKBOKMUTVV7A",
        "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
        "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
    ];
    for secret in cases {
        assert_eq!(
            redact(&format!("key={secret} end")),
            "key=[REDACTED:secret] end",
            "{secret}"
        );
    }
    assert_eq!(
        redact("Authorization: Bearer abcdefghijklmnopqrstuvwxyz"),
        "Authorization: [REDACTED:secret]"
    );
}

#[test]
fn leaves_lookalikes_alone() {
    let negatives = [
        "version 1.2.3 and 10.4.22-beta",
        "2024-01-15T10:30:00.123456789Z",
        "1700000000123456789",
        "123e4567-e89b-12d3-a456-426614174000",
        "12345678-1234-1234-1234-123456789012",
        "trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7",
        "4111 1111 1111 1112",
        "4111111111111112",
        "order 12345678901234567890",
        "temperature 0.7, max_tokens 4096, top_p 0.95",
        "user@localhost and @mention and @app.route",
        "react@18.2.0",
        "std::vec::Vec and a::b and cafe:face:bad",
        "10:30:00",
        "task-management-and-scheduling-system-overview",
        "ask-me-anything-about-the-weather-today",
        "price 1234.56 and 5555 and 12,345,678",
        "gpt-4o-mini-2024-07-18",
        "The bearer of this letter",
        "claude-3-5-sonnet-20241022",
    ];
    for text in negatives {
        assert_eq!(redact(text), text);
    }
}

#[test]
fn sees_through_json_escapes() {
    let json = r#"[{"role":"user","content":"hi\nbob@example.com\n4111 1111 1111 1111\tsk-abcdefghijklmnopqrstuvwxyz"}]"#;
    let redacted = redact(json);
    assert_eq!(
        redacted,
        r#"[{"role":"user","content":"hi\n[REDACTED:email]\n[REDACTED:credit_card]\t[REDACTED:secret]"}]"#
    );
    assert!(serde_json::from_str::<serde_json::Value>(&redacted).is_ok());
}

#[test]
fn custom_rules_replace_literally_and_default_to_redacted() {
    let rules = vec![
        RedactRule::Custom(CustomRedactRule {
            pattern: r"cust-\d{6}".into(),
            replacement: None,
        }),
        RedactRule::Custom(CustomRedactRule {
            pattern: r"(?i)project (\w+)".into(),
            replacement: Some("project $1".into()),
        }),
        // Matches the empty text: empty matches are ignored, not inserted everywhere.
        RedactRule::Custom(CustomRedactRule {
            pattern: r"x*".into(),
            replacement: Some("!".into()),
        }),
    ];
    let redactor = Redactor::new(&rules).unwrap().unwrap();
    let mut text = "ids cust-123456 of Project Falcon".to_owned();
    assert!(redactor.redact_text(&mut text));
    assert_eq!(text, "ids [REDACTED] of project $1");
}

#[test]
fn bad_rules_name_their_index() {
    let unknown = Redactor::new(&[
        RedactRule::Detector("email".into()),
        RedactRule::Detector("ssn".into()),
    ])
    .unwrap_err();
    assert!(
        unknown
            .to_string()
            .starts_with("redact[1]: unknown detector"),
        "{unknown}"
    );
    let invalid = Redactor::new(&[RedactRule::Custom(CustomRedactRule {
        pattern: "(".into(),
        replacement: None,
    })])
    .unwrap_err();
    assert!(
        invalid.to_string().starts_with("redact[0]: pattern"),
        "{invalid}"
    );
    let huge = Redactor::new(&[RedactRule::Custom(CustomRedactRule {
        pattern: r"\w{1000}\w{1000}".into(),
        replacement: None,
    })])
    .unwrap_err();
    assert!(
        matches!(huge, RedactError::Pattern { index: 0, .. }),
        "{huge}"
    );
    let many: Vec<RedactRule> = (0..=MAX_CUSTOM_RULES)
        .map(|n| {
            RedactRule::Custom(CustomRedactRule {
                pattern: format!("x{n}"),
                replacement: None,
            })
        })
        .collect();
    assert_eq!(
        Redactor::new(&many).unwrap_err(),
        RedactError::TooManyPatterns
    );
    assert!(Redactor::new(&[]).unwrap().is_none());
}

#[test]
fn redacts_every_string_value_of_a_span_and_counts_them() {
    let redactor = all_detectors();
    let resource = Arc::new(Resource {
        attributes: vec![text("host.ip", "10.0.0.12"), text("service.name", "chat")],
        ..Default::default()
    });
    let mut first = make_span(1, 1);
    first.name = "GET /users/bob@example.com".into();
    first.status.message = "bad key sk-abcdefghijklmnopqrstuvwxyz".into();
    first.attributes = vec![
        text("user.email", "bob@example.com"),
        text("gen_ai.request.model", "gpt-4o"),
        KeyValue::new(
            "nested",
            AttrValue::Map(vec![KeyValue::new(
                "list",
                AttrValue::Array(vec![
                    AttrValue::String("4111 1111 1111 1111".into()),
                    AttrValue::Int(4111111111111111),
                ]),
            )]),
        ),
    ];
    first.events = vec![Event {
        name: "gen_ai.user.message".into(),
        attributes: vec![text("content", "my phone is +1 555 123 4567")],
        ..Default::default()
    }];
    first.resource = Arc::clone(&resource);
    let mut second = make_span(1, 2);
    second.resource = Arc::clone(&resource);
    let mut spans = vec![first, second];
    assert_eq!(redactor.redact_shared(&mut spans), 1);
    assert!(Arc::ptr_eq(&spans[0].resource, &spans[1].resource));
    assert_eq!(
        spans[0].resource.attributes[0].value,
        AttrValue::String("[REDACTED:ip_address]".into())
    );
    assert_eq!(redactor.redact_span(&mut spans[0]), 5);
    assert_eq!(spans[0].name, "GET /users/[REDACTED:email]");
    assert_eq!(spans[0].status.message, "bad key [REDACTED:secret]");
    assert_eq!(
        spans[0].attributes[2].value,
        AttrValue::Map(vec![KeyValue::new(
            "list",
            AttrValue::Array(vec![
                AttrValue::String("[REDACTED:credit_card]".into()),
                AttrValue::Int(4111111111111111),
            ]),
        )])
    );
    assert_eq!(redactor.redact_span(&mut spans[1]), 0);
}

/// Text made of the pieces detectors look for, glued in any order.
fn suspicious_text() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "bob@example.com",
        "4111 1111 1111 1111",
        "4111111111111111",
        "+1 555 123 4567",
        "(555) 123-4567",
        "192.168.0.1",
        "::1",
        "fe80::1",
        "2001:db8::7",
        "sk-",
        "Bearer ",
        "abcdefghijklmnopqrstuvwxyz",
        "eyJ",
        "AKIA",
        "0123456789",
        "@",
        ".",
        "-",
        " ",
        ":",
        "\\n",
        "[REDACTED:email]",
        "x",
        "é",
        "1",
        "9",
        "_",
        "\"",
    ]);
    prop::collection::vec(pieces, 0..24).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(crate::test_support::bounded_cases())]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        redact(&text);
    }

    #[test]
    fn redaction_is_complete_and_idempotent(text in suspicious_text()) {
        let redactor = all_detectors();
        let once = redact(&text);
        let mut twice = once.clone();
        prop_assert!(!redactor.redact_text(&mut twice), "{text:?} → {once:?} → {twice:?}");
        prop_assert_eq!(&once, &twice);
    }
}
