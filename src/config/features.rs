//! `[features]`: the codes agents dial from their phones (pause with an
//! optional reason code appended, unpause, login, logout), checked so that
//! no code can shadow a routed number or another code.

use std::collections::BTreeMap;

use super::super::raw::{RawFeatures, S};
use super::super::types::{Features, NumberRoute};
use super::Ctx;

/// A code is what a keypad dials: digits, `*` and `#`.
fn dialable(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
}

pub(super) fn compile(ctx: &mut Ctx, raw: &RawFeatures, numbers: &[NumberRoute]) -> Features {
    let mut code = |key: &str, v: &Option<S<String>>| -> Option<String> {
        let v = v.as_ref()?;
        let text = v.get_ref();
        if !dialable(text) {
            ctx.err(
                v.span(),
                format!("features.{key} `{text}` must be digits, `*` and `#` only"),
            );
            return None;
        }
        if numbers.iter().any(|n| n.number == *text) {
            ctx.err(
                v.span(),
                format!("features.{key} `{text}` is also a [[numbers]] number"),
            );
            return None;
        }
        Some(text.clone())
    };
    let pause = code("pause", &raw.pause);
    let unpause = code("unpause", &raw.unpause);
    let login = code("login", &raw.login);
    let logout = code("logout", &raw.logout);
    let others = [
        ("unpause", &unpause, &raw.unpause),
        ("login", &login, &raw.login),
        ("logout", &logout, &raw.logout),
    ];
    for (i, (key, v, span)) in others.iter().enumerate() {
        let (Some(v), Some(span)) = (v, span) else {
            continue;
        };
        // The pause code is a prefix (reasons follow it): no other code
        // may start with it, or it would read as a pause reason.
        if let Some(p) = pause.as_ref().filter(|p| v.starts_with(p.as_str())) {
            ctx.err(
                span.span(),
                format!("features.{key} `{v}` starts with the pause code `{p}`"),
            );
        }
        for (other, w, _) in &others[..i] {
            if w.as_deref() == Some(v.as_str()) {
                ctx.err(
                    span.span(),
                    format!("features.{key} `{v}` is also features.{other}"),
                );
            }
        }
    }
    let mut pause_reasons = BTreeMap::new();
    for (k, v) in &raw.pause_reasons {
        let digits = k.get_ref();
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
            ctx.err(
                k.span(),
                format!("pause reason code `{digits}` must be digits"),
            );
        } else if v.get_ref().trim().is_empty() {
            ctx.err(v.span(), format!("pause reason `{digits}` is empty"));
        } else {
            pause_reasons.insert(digits.clone(), v.get_ref().clone());
        }
    }
    if !pause_reasons.is_empty() && pause.is_none() {
        if let Some((k, _)) = raw.pause_reasons.iter().next() {
            ctx.err(k.span(), "features.pause_reasons needs features.pause");
        }
    }
    if let Some(p) = &pause {
        // Reason codes are dialled after the pause code: each such number
        // must not be a routed number either.
        for digits in pause_reasons.keys() {
            let dialled = format!("{p}{digits}");
            if numbers.iter().any(|n| n.number == dialled) {
                if let Some((k, _)) = raw
                    .pause_reasons
                    .iter()
                    .find(|(k, _)| k.get_ref() == digits)
                {
                    ctx.err(
                        k.span(),
                        format!(
                            "`{dialled}` (pause with reason {digits}) is also a [[numbers]] number"
                        ),
                    );
                }
            }
        }
    }
    Features {
        pause,
        unpause,
        login,
        logout,
        pause_reasons,
    }
}
