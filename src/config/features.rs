//! `[features]`: the codes agents dial from their phones (pause with an
//! optional reason code appended, unpause, login, logout), checked so that
//! no code can shadow a routed number or another code.

use std::collections::BTreeMap;

use super::super::raw::{RawFeatures, RawTrunk, S};
use super::super::types::{Features, NumberRoute, OutsideTransfer, DEFAULT_TRANSFER_RING_S};
use super::Ctx;

/// A code is what a keypad dials: digits, `*` and `#`.
fn dialable(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
}

pub(super) fn compile(
    ctx: &mut Ctx,
    raw: &RawFeatures,
    numbers: &[NumberRoute],
    trunks: &BTreeMap<S<String>, RawTrunk>,
) -> Features {
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
        transfer: transfer(ctx, raw, trunks),
    }
}

/// Upper bound of `transfer_ring_s` (as a queue's ring timeout).
const MAX_TRANSFER_RING_S: u64 = 600;

/// `transfer_trunk` (a `[trunks]` name), its prefixes and ring time.
fn transfer(
    ctx: &mut Ctx,
    raw: &RawFeatures,
    trunks: &BTreeMap<S<String>, RawTrunk>,
) -> Option<OutsideTransfer> {
    let mut prefixes = Vec::new();
    for p in raw.transfer_prefixes.iter().flat_map(|v| v.get_ref()) {
        let text = p.get_ref();
        let ok = !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_digit() || "+*#".contains(c));
        if ok {
            prefixes.push(text.clone());
        } else {
            ctx.err(
                p.span(),
                format!(
                    "features.transfer_prefixes `{text}` must be digits, `+`, `*` and `#` only"
                ),
            );
        }
    }
    let ring_s = ctx.int(
        raw.transfer_ring_s.as_ref(),
        "transfer_ring_s",
        1..=MAX_TRANSFER_RING_S,
        u64::from(DEFAULT_TRANSFER_RING_S),
    );
    let Some(name) = &raw.transfer_trunk else {
        let stray = raw
            .transfer_prefixes
            .as_ref()
            .map(S::span)
            .or_else(|| raw.transfer_ring_s.as_ref().map(S::span));
        if let Some(span) = stray {
            ctx.err(
                span,
                "features.transfer_prefixes and transfer_ring_s need features.transfer_trunk",
            );
        }
        return None;
    };
    if !trunks.keys().any(|k| k.get_ref() == name.get_ref()) {
        ctx.err(
            name.span(),
            format!(
                "features.transfer_trunk `{}` is no [trunks] entry",
                name.get_ref()
            ),
        );
        return None;
    }
    Some(OutsideTransfer {
        trunk: name.get_ref().clone(),
        prefixes,
        ring_s: u32::try_from(ring_s).unwrap_or(DEFAULT_TRANSFER_RING_S),
    })
}
