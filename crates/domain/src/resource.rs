//! Resource indicators (RFC 8707, SPEC 14): which protected resources a token is for. A
//! request names them with `resource` (absolute URIs without a fragment, repeatable); the
//! token's audience is what was asked, and a refresh may narrow it but never widen it. A token
//! with no audience (no `resource` was sent) is valid at every resource, as before.

use crate::error::Error;

/// Most resources one request may name.
pub const MAX_RESOURCES: usize = 10;
/// Longest resource URI, in bytes.
pub const MAX_RESOURCE_LEN: usize = 2048;

/// The `resource` values of a request, checked (RFC 8707 §2: an absolute URI, no fragment),
/// in the order given, duplicates dropped. Empty when none were sent.
pub fn parse_resources<S: AsRef<str>>(values: &[S]) -> Result<Vec<String>, Error> {
    if values.len() > MAX_RESOURCES {
        return Err(Error::invalid_target(format!(
            "At most {MAX_RESOURCES} resource values"
        )));
    }
    let mut out: Vec<String> = Vec::new();
    for v in values {
        let v = v.as_ref();
        if v.len() > MAX_RESOURCE_LEN || v.chars().any(|c| c.is_control() || c == ' ') {
            return Err(Error::invalid_target("resource must be an absolute URI"));
        }
        let url = url::Url::parse(v)
            .map_err(|_| Error::invalid_target("resource must be an absolute URI"))?;
        if url.fragment().is_some() || v.contains('#') {
            return Err(Error::invalid_target("resource must not have a fragment"));
        }
        if url.cannot_be_a_base() && !matches!(url.scheme(), "urn") {
            return Err(Error::invalid_target("resource must be an absolute URI"));
        }
        if !out.iter().any(|o| o == v) {
            out.push(v.to_owned());
        }
    }
    Ok(out)
}

/// The audience of tokens issued from a grant that covered `granted`, for a request that
/// named `requested`: what was granted when nothing is named; otherwise the named ones, each
/// of which the grant must cover (RFC 8707 §2.2). A grant without resources (`granted` empty)
/// covers only requests without resources.
pub fn narrow(granted: &[String], requested: &[String]) -> Result<Vec<String>, Error> {
    if requested.is_empty() {
        return Ok(granted.to_vec());
    }
    match requested.iter().find(|r| !granted.contains(r)) {
        None => Ok(requested.to_vec()),
        Some(r) => Err(Error::invalid_target(format!(
            "The grant does not cover the resource {r}"
        ))),
    }
}

/// Whether a token with `audience` may be used at `resource` (no audience: anywhere).
pub fn admits(audience: &[String], resource: &str) -> bool {
    audience.is_empty() || audience.iter().any(|a| a == resource)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_absolute_uris_without_fragments() {
        assert_eq!(
            parse_resources(&["https://mcp.example.com/mcp", "https://mcp.example.com/mcp"])
                .unwrap(),
            vec!["https://mcp.example.com/mcp"],
            "duplicates dropped"
        );
        assert!(parse_resources::<&str>(&[]).unwrap().is_empty());
        assert_eq!(
            parse_resources(&["urn:example:api"]).unwrap(),
            vec!["urn:example:api"]
        );
        for bad in [
            "/relative",
            "mcp.example.com",
            "https://x.example/#frag",
            "https://x.example/a b",
            "",
        ] {
            assert!(
                matches!(parse_resources(&[bad]), Err(Error::InvalidTarget(_))),
                "{bad:?}"
            );
        }
        let many: Vec<String> = (0..11).map(|i| format!("https://r{i}.example/")).collect();
        assert!(parse_resources(&many).is_err());
    }

    #[test]
    fn a_refresh_narrows_but_never_widens() {
        let a = "https://a.example/mcp".to_owned();
        let b = "https://b.example/mcp".to_owned();
        let granted = vec![a.clone(), b.clone()];
        assert_eq!(narrow(&granted, &[]).unwrap(), granted);
        assert_eq!(
            narrow(&granted, std::slice::from_ref(&a)).unwrap(),
            vec![a.clone()]
        );
        assert!(matches!(
            narrow(std::slice::from_ref(&a), std::slice::from_ref(&b)),
            Err(Error::InvalidTarget(_))
        ));
        assert!(
            narrow(&[], std::slice::from_ref(&a)).is_err(),
            "no widening from none"
        );
        assert!(admits(&[], &a) && admits(&granted, &b) && !admits(std::slice::from_ref(&a), &b));
    }
}
