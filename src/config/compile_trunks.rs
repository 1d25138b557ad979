//! `[trunks.NAME]`: the gateway's URI, its digest credentials, the caller
//! id presented and the concurrent call limit, checked with the place of
//! each mistake.

use super::{Ctx, MAX_CALLS};
use crate::config::raw::{RawTrunk, S};
use crate::config::types::{Trunk, TrunkAuth};
use crate::sip::Peer;
use std::net::{IpAddr, SocketAddr};

/// Characters a caller id (a SIP user part) may hold.
fn is_user_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+-_.*#".contains(c)
}

pub(super) fn trunk(ctx: &mut Ctx, name: &S<String>, t: &RawTrunk) -> Option<Trunk> {
    let n = name.get_ref();
    if n.is_empty()
        || !n
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
    {
        ctx.err(
            name.span(),
            format!("trunk name `{n}` must be letters, digits, - or _"),
        );
    }
    let Some(uri) = &t.uri else {
        ctx.err(name.span(), format!("trunk `{n}` needs `uri`"));
        return None;
    };
    let target = match gateway(uri.get_ref()) {
        Ok(g) => Some(g),
        Err(why) => {
            ctx.err(uri.span(), format!("trunk uri `{}`: {why}", uri.get_ref()));
            None
        }
    };
    let auth = match (&t.username, &t.password) {
        (Some(u), Some(p)) => {
            for (v, key) in [(u, "username"), (p, "password")] {
                if v.get_ref().is_empty() {
                    ctx.err(v.span(), format!("{key} must not be empty"));
                }
            }
            Some(TrunkAuth {
                username: u.get_ref().clone(),
                password: p.get_ref().clone(),
            })
        }
        (Some(u), None) => {
            ctx.err(u.span(), "a trunk `username` needs a `password`");
            None
        }
        (None, Some(p)) => {
            ctx.err(p.span(), "a trunk `password` needs a `username`");
            None
        }
        (None, None) => None,
    };
    let caller_id = match &t.caller_id {
        Some(c) => {
            let v = c.get_ref();
            if v.is_empty() || !v.chars().all(is_user_char) {
                ctx.err(
                    c.span(),
                    format!("caller_id `{v}` must be a number or SIP user (letters, digits, + - _ . * #)"),
                );
            }
            v.clone()
        }
        None => auth
            .as_ref()
            .map(|a| a.username.clone())
            .filter(|u| u.chars().all(is_user_char))
            .unwrap_or_else(|| "sipacd".into()),
    };
    let max_calls = ctx.int(t.max_calls.as_ref(), "max_calls", 0..=MAX_CALLS, 0);
    let (peer, host, uri_params) = target?;
    Some(Trunk {
        name: n.clone(),
        uri: uri.get_ref().clone(),
        peer,
        host,
        uri_params,
        auth,
        caller_id,
        max_calls: u32::try_from(max_calls).unwrap_or(u32::MAX),
    })
}

/// `sip:[user@]IP[:PORT][;transport=udp|tcp]` as the peer, the host part
/// for Request-URIs and the `;transport=` parameter to repeat there. Only
/// IP addresses: sipacd never resolves names on the call path.
fn gateway(uri: &str) -> Result<(Peer, String, String), String> {
    let rest = uri
        .strip_prefix("sip:")
        .ok_or("must start with sip: (sip:IP[:PORT][;transport=tcp])")?;
    let (hostport, params) = rest.split_once(';').unwrap_or((rest, ""));
    let hostport = hostport.rsplit_once('@').map_or(hostport, |(_, h)| h);
    let addr: SocketAddr = match hostport.parse() {
        Ok(a) => a,
        Err(_) => {
            let ip: IpAddr = hostport
                .trim_matches(|c| c == '[' || c == ']')
                .parse()
                .map_err(|_| "the host must be an IP address, with an optional port")?;
            SocketAddr::new(ip, 5060)
        }
    };
    let mut tcp = false;
    for p in params.split(';').filter(|p| !p.is_empty()) {
        match p.to_ascii_lowercase().as_str() {
            "transport=udp" => tcp = false,
            "transport=tcp" => tcp = true,
            other => {
                return Err(format!(
                    "parameter `{other}` is not supported (only transport=udp or transport=tcp)"
                ))
            }
        }
    }
    let (peer, params) = if tcp {
        (Peer::tcp(addr), ";transport=tcp".to_string())
    } else {
        (Peer::udp(addr), String::new())
    };
    Ok((peer, addr.to_string(), params))
}

#[cfg(test)]
mod tests {
    use super::gateway;

    #[test]
    fn gateway_uris_become_a_peer_and_a_host() {
        let (peer, host, params) = gateway("sip:gw@127.0.0.1:5090").unwrap();
        assert_eq!(
            peer,
            crate::sip::Peer::udp("127.0.0.1:5090".parse().unwrap())
        );
        assert_eq!((host.as_str(), params.as_str()), ("127.0.0.1:5090", ""));
        let (peer, host, params) = gateway("sip:10.0.0.1;transport=TCP").unwrap();
        assert_eq!(
            peer,
            crate::sip::Peer::tcp("10.0.0.1:5060".parse().unwrap())
        );
        assert_eq!(
            (host.as_str(), params.as_str()),
            ("10.0.0.1:5060", ";transport=tcp")
        );
    }

    #[test]
    fn names_tls_and_other_schemes_are_refused() {
        for bad in [
            "sips:127.0.0.1",
            "sip:gw.example.com:5060",
            "sip:127.0.0.1;transport=tls",
            "tel:+4930123",
        ] {
            assert!(gateway(bad).is_err(), "{bad}");
        }
    }

    fn load(text: &str) -> Result<crate::config::Config, Vec<String>> {
        crate::config::parse_str(text, std::path::Path::new("t.toml"))
            .map_err(|e| e.0.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn a_trunk_is_read_with_its_defaults() {
        let cfg = load("[trunks.carrier]\nuri = \"sip:10.1.1.1:5070\"\nusername = \"acme\"\npassword = \"pw\"\n").unwrap();
        let t = &cfg.trunks["carrier"];
        assert_eq!(t.caller_id, "acme", "the username is presented by default");
        assert_eq!(t.max_calls, 0);
        assert_eq!(t.auth.as_ref().map(|a| a.password.as_str()), Some("pw"));
        assert!(!format!("{t:?}").contains("pw"), "never printed");
    }

    #[test]
    fn mistakes_point_at_their_place() {
        let errs = load(
            "[trunks.a]\nuri = \"sip:gw.example.com\"\n\
             [trunks.b]\nuri = \"sip:10.0.0.1\"\nusername = \"u\"\n\
             [trunks.c]\ncaller_id = \"a b\"\n\
             [trunks.d]\nuri = \"sip:10.0.0.1\"\nmax_calls = 2000000\nsecret = 1\n",
        )
        .unwrap_err();
        let joined = errs.join("\n");
        assert!(
            joined.contains(
                "t.toml:2:7: trunk uri `sip:gw.example.com`: the host must be an IP address"
            ),
            "{joined}"
        );
        assert!(
            joined.contains("t.toml:5:12: a trunk `username` needs a `password`"),
            "{joined}"
        );
        assert!(
            joined.contains("t.toml:6:1: trunk `c` needs `uri`")
                || joined.contains("t.toml:6:9: trunk `c` needs `uri`"),
            "{joined}"
        );
        assert!(
            joined.contains("max_calls = 2000000 is out of range"),
            "{joined}"
        );
        assert!(joined.contains("unknown key `trunks.d.secret`"), "{joined}");
    }
}
