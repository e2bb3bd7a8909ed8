//! Tests for URL parsing, SSRF ranges and the allowlist.

use super::*;

#[test]
fn parse_cases() {
    let long = format!("https://example.com/{}", "a".repeat(2100));
    let cases: &[(&str, Result<&str, UrlError>)] = &[
        ("https://example.com/hook", Ok("https://example.com/hook")),
        (
            "http://Example.COM:8080/a?b=c",
            Ok("http://example.com:8080/a?b=c"),
        ),
        ("https://[::1]/x", Ok("https://[::1]/x")),
        ("ftp://example.com/", Err(UrlError::Scheme)),
        ("file:///etc/passwd", Err(UrlError::Scheme)),
        ("javascript:alert(1)", Err(UrlError::Scheme)),
        ("http://", Err(UrlError::NoHost)),
        ("https://user:pw@example.com/", Err(UrlError::Credentials)),
        ("https://user@example.com/", Err(UrlError::Credentials)),
        ("https://:pw@example.com/", Err(UrlError::Credentials)),
        ("not a url", Err(UrlError::Invalid)),
        ("/relative/path", Err(UrlError::Invalid)),
        ("", Err(UrlError::Invalid)),
        (&long, Err(UrlError::TooLong)),
    ];
    for (input, want) in cases {
        let got = TargetUrl::parse(input);
        match want {
            Ok(s) => assert_eq!(
                got.map(TargetUrl::into_string).as_deref(),
                Ok(*s),
                "{input}"
            ),
            Err(e) => assert_eq!(got.as_ref().err(), Some(e), "{input}"),
        }
    }
    let u = TargetUrl::parse("https://example.com/x").unwrap();
    assert_eq!(u.host_str(), "example.com");
    assert_eq!(u.as_url().scheme(), "https");
    assert_eq!(UrlError::Scheme.to_string(), "url must use http or https");
    let json = serde_json::to_string(&u).unwrap();
    assert_eq!(serde_json::from_str::<TargetUrl>(&json).unwrap(), u);
    assert!(serde_json::from_str::<TargetUrl>("\"ftp://x\"").is_err());
}

#[test]
fn ip_ranges() {
    let cases: &[(&str, bool)] = &[
        ("8.8.8.8", true),
        ("1.1.1.1", true),
        ("93.184.216.34", true),
        ("0.0.0.0", false),
        ("0.1.2.3", false),
        ("10.0.0.1", false),
        ("10.255.255.255", false),
        ("100.64.0.1", false),
        ("100.127.255.255", false),
        ("100.128.0.1", true),
        ("127.0.0.1", false),
        ("127.255.0.1", false),
        ("169.254.169.254", false),
        ("172.15.255.255", true),
        ("172.16.0.1", false),
        ("172.31.255.255", false),
        ("172.32.0.1", true),
        ("192.0.0.8", false),
        ("192.0.2.1", false),
        ("192.168.1.1", false),
        ("198.18.0.1", false),
        ("198.51.100.7", false),
        ("203.0.113.9", false),
        ("224.0.0.1", false),
        ("239.255.255.250", false),
        ("240.0.0.1", false),
        ("255.255.255.255", false),
        ("2606:4700:4700::1111", true),
        ("2001:4860:4860::8888", true),
        ("::", false),
        ("::1", false),
        ("fc00::1", false),
        ("fd12:3456::1", false),
        ("fe80::1", false),
        ("febf::1", false),
        ("fec0::1", false),
        ("ff02::1", false),
        ("2001:db8::1", false),
        ("100::1", false),
        ("::ffff:127.0.0.1", false),
        ("::ffff:10.1.2.3", false),
        ("::ffff:169.254.169.254", false),
        ("::ffff:8.8.8.8", true),
        ("::127.0.0.1", false),
        ("::8.8.8.8", true),
        ("64:ff9b::10.0.0.1", false),
        ("64:ff9b::8.8.8.8", true),
        ("2002:c0a8:0101::1", false),
        ("2002:0808:0808::1", true),
    ];
    let strict = UrlPolicy::new(false, None).unwrap();
    let open = UrlPolicy::permissive();
    for (ip, want) in cases {
        let ip: IpAddr = ip.parse().unwrap();
        assert_eq!(strict.is_ip_allowed(ip), *want, "{ip}");
        assert!(open.is_ip_allowed(ip), "{ip}");
    }
}

#[test]
fn check_url_hosts() {
    let strict = UrlPolicy::new(false, None).unwrap();
    let cases: &[(&str, bool)] = &[
        ("https://example.com/", true),
        ("https://8.8.8.8/", true),
        ("http://127.0.0.1:8080/", false),
        ("http://127.1/", false),
        ("http://0x7f000001/", false),
        ("http://2130706433/", false),
        ("http://169.254.169.254/latest/meta-data", false),
        ("http://[::1]/", false),
        ("http://[::ffff:192.168.0.1]/", false),
        ("http://[2606:4700::1]/", true),
        ("http://localhost/", false),
        ("http://LOCALHOST:3000/", false),
        ("http://localhost./", false),
        ("http://api.localhost/", false),
        ("http://notlocalhost/", true),
    ];
    for (url, ok) in cases {
        let u = TargetUrl::parse(url).unwrap();
        let want = if *ok {
            Ok(())
        } else {
            Err(UrlError::PrivateAddress)
        };
        assert_eq!(strict.check_url(&u), want, "{url}");
        assert_eq!(UrlPolicy::permissive().check_url(&u), Ok(()), "{url}");
    }
}

#[test]
fn allowlist() {
    let p = UrlPolicy::new(true, Some(r"https://([a-z0-9-]+\.)?example\.com/.*")).unwrap();
    let cases: &[(&str, Result<(), UrlError>)] = &[
        ("https://example.com/hook", Ok(())),
        ("https://api.example.com/a/b", Ok(())),
        ("http://example.com/hook", Err(UrlError::NotAllowlisted)),
        (
            "https://example.com.evil.net/",
            Err(UrlError::NotAllowlisted),
        ),
        (
            "https://evil.net/?https://example.com/",
            Err(UrlError::NotAllowlisted),
        ),
    ];
    for (url, want) in cases {
        assert_eq!(p.check_url(&TargetUrl::parse(url).unwrap()), *want, "{url}");
    }
    // The allowlist alternation is grouped, so anchors apply to every branch.
    let alt = UrlPolicy::new(false, Some("https://a\\.com/|https://b\\.com/")).unwrap();
    assert!(alt
        .check_url(&TargetUrl::parse("https://b.com/").unwrap())
        .is_ok());
    let err = alt.check_url(&TargetUrl::parse("https://b.com/x").unwrap());
    assert_eq!(err, Err(UrlError::NotAllowlisted));
    let private = alt.check_url(&TargetUrl::parse("https://a.com/").unwrap());
    assert_eq!(private, Ok(()));
    assert!(UrlPolicy::new(false, Some("(")).is_err());
}
