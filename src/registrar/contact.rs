//! Contact values of a REGISTER (RFC 3261 §10.2.1, §20.10): `*` or a
//! comma-separated list of addresses, each parsed by
//! [`crate::sip::name_addr`] (quoted parameters such as `+sip.instance`,
//! `reg-id`, GRUU parameters and display names included).

use crate::sip::message::split_list;
pub use crate::sip::name_addr::{NameAddr, NameAddrError};

/// One element of a Contact header.
#[derive(Debug, Clone, PartialEq)]
pub enum ContactValue {
    /// `Contact: *` (remove all bindings).
    Star,
    Addr(NameAddr),
}

/// Parses one name-addr or addr-spec with trailing header parameters.
pub fn parse_name_addr(s: &str) -> Result<NameAddr, NameAddrError> {
    NameAddr::parse(s)
}

/// Parses a Contact header value into its comma-separated elements,
/// failing if any element is malformed.
pub fn parse_contacts(value: &str) -> Result<Vec<ContactValue>, NameAddrError> {
    split_list(value, ',')
        .into_iter()
        .map(|part| match part.trim() {
            "*" => Ok(ContactValue::Star),
            _ => NameAddr::parse(part).map(ContactValue::Addr),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_contacts_in_one_header() {
        let v = r#""Alice, Desk" <sip:1001@10.0.0.5:5062;transport=udp>;expires=60;q=0.5, sip:1001@10.0.0.6;expires=0"#;
        let c = parse_contacts(v).unwrap();
        assert_eq!(c.len(), 2);
        let ContactValue::Addr(a) = &c[0] else {
            panic!()
        };
        assert_eq!(a.uri, "sip:1001@10.0.0.5:5062;transport=udp");
        assert_eq!(a.param("expires"), Some(Some("60")));
        assert_eq!(a.param("q"), Some(Some("0.5")));
        let ContactValue::Addr(b) = &c[1] else {
            panic!()
        };
        assert_eq!(b.uri, "sip:1001@10.0.0.6");
        assert_eq!(b.param("expires"), Some(Some("0")));
        assert_eq!(parse_contacts(" * "), Ok(vec![ContactValue::Star]));
        assert!(parse_contacts("<>").is_err());
    }

    #[test]
    fn linphone_and_outbound_contacts() {
        let v = "<sip:1003@127.0.0.1:5072;transport=udp>;expires=600;\
                 +sip.instance=\"<urn:uuid:0e4b3cc6-4b8e-4a1c-9a5a-1f2f3e4d5c6b>\";reg-id=1";
        let c = parse_contacts(v).unwrap();
        let [ContactValue::Addr(a)] = c.as_slice() else {
            panic!("{c:?}")
        };
        assert_eq!(a.uri, "sip:1003@127.0.0.1:5072;transport=udp");
        assert_eq!(a.param("expires"), Some(Some("600")));
        assert_eq!(a.param("reg-id"), Some(Some("1")));
        assert_eq!(
            a.param("+sip.instance"),
            Some(Some("<urn:uuid:0e4b3cc6-4b8e-4a1c-9a5a-1f2f3e4d5c6b>"))
        );
    }

    #[test]
    fn user_part() {
        let a = parse_name_addr("\"A\" <sip:1001@example.com>;tag=x").unwrap();
        assert_eq!(a.user(), Some("1001"));
        assert_eq!(a.param("tag"), Some(Some("x")));
        assert_eq!(parse_name_addr("<tel:+123>").unwrap().user(), None);
    }
}
