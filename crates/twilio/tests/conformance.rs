//! Every request the adapter can make, checked against Twilio's OpenAPI specs
//! (`crates/twilio/spec/`): the catalogue statically, then every request actually sent while
//! exercising every operation (and its error paths) against the emulator.

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeSet;

use secrecy::SecretString;
use trunkline_core::model::OriginationTarget;
use trunkline_core::ports::{
    AvailableNumberQuery, CarrierProvider, NumberMarket, NumberQuery, NumberType, RouteSpec,
    RouteTargetSpec, TerminationSpec,
};
use trunkline_core::{E164, SipTarget};
use trunkline_testkit::twilio::spec::TwilioSpecs;
use trunkline_testkit::twilio::{Host, Params, RecordedRequest};
use trunkline_twilio::{ApplicationSid, TwilioHost, TwilioOperation, VoiceConfig};

use common::World;

fn spec_host(h: TwilioHost) -> Host {
    match h {
        TwilioHost::Api => Host::Api,
        TwilioHost::Trunking => Host::Trunking,
    }
}

#[test]
fn the_catalogue_matches_the_spec() {
    let specs = TwilioSpecs::load().unwrap();
    for op in TwilioOperation::ALL {
        let info = op.info();
        let spec = specs.for_host(spec_host(info.host));
        let found = spec
            .operation(info.method, info.template)
            .unwrap_or_else(|| panic!("{op}: {} {} not in the spec", info.method, info.template));
        assert_eq!(found.operation_id(), Some(info.operation_id), "{op}");
        let known_query = found.query_parameters();
        for q in info.query {
            assert!(
                known_query.contains(q),
                "{op}: query parameter {q} unknown to the spec"
            );
        }
        let known_form = found.form_parameters();
        for f in info.form {
            assert!(
                known_form.contains(f),
                "{op}: form parameter {f} unknown to the spec"
            );
        }
        // Whatever the spec requires, the adapter must be able to send.
        let problems = found.check_request(
            &op.path(&sample_ids(info.template)),
            &Params::default(),
            &Params(
                info.form
                    .iter()
                    .map(|f| ((*f).to_owned(), "x".to_owned()))
                    .collect(),
            ),
        );
        assert!(
            !problems.iter().any(|p| p.contains("missing required")),
            "{op}: {problems:?}"
        );
    }
}

/// A well-formed SID for every placeholder of a template, in order.
fn sample_ids(template: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = open + rest[open..].find('}').unwrap();
        let name = &rest[open + 1..close];
        if name == "CountryCode" {
            ids.push("US".to_owned());
            rest = &rest[close + 1..];
            continue;
        }
        let prefix = match (name, &rest[..open]) {
            ("AccountSid", _) => "AC",
            ("TrunkSid", _) => "TK",
            ("Sid", before) if before.ends_with("/Accounts/") => "AC",
            ("Sid", before) if before.ends_with("/IncomingPhoneNumbers/") => "PN",
            ("Sid", before) if before.ends_with("/OriginationUrls/") => "OU",
            ("Sid", before) if before.ends_with("/PhoneNumbers/") => "PN",
            ("Sid", before) if before.ends_with("/Trunks/") => "TK",
            ("Sid", before) if before.ends_with("/CredentialLists/") => "CL",
            ("Sid", before) if before.ends_with("/Credentials/") => "CR",
            ("CredentialListSid", _) => "CL",
            other => panic!("no sample for {other:?}"),
        };
        ids.push(format!("{prefix}{}", "0123456789abcdef".repeat(2)));
        rest = &rest[close + 1..];
    }
    ids
}

trait PathWithStrings {
    fn path(&self, ids: &[String]) -> String;
}

impl PathWithStrings for TwilioOperation {
    fn path(&self, ids: &[String]) -> String {
        let mut out = String::new();
        let mut rest = self.info().template;
        let mut ids = ids.iter();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            out.push_str(ids.next().unwrap());
            let close = open + rest[open..].find('}').unwrap();
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        out
    }
}

#[test]
fn the_checker_catches_what_it_should() {
    let specs = TwilioSpecs::load().unwrap();
    let op = specs
        .trunking
        .find(
            "POST",
            "/v1/Trunks/TK0123456789abcdef0123456789abcdef/OriginationUrls",
        )
        .unwrap();
    assert_eq!(op.operation_id(), Some("CreateOriginationUrl"));
    let form = |pairs: &[(&str, &str)]| {
        Params(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    };
    let good = form(&[
        ("Weight", "10"),
        ("Priority", "10"),
        ("Enabled", "true"),
        ("FriendlyName", "x"),
        ("SipUrl", "sip:a.example.com"),
    ]);
    let path = "/v1/Trunks/TK0123456789abcdef0123456789abcdef/OriginationUrls";
    assert_eq!(
        op.check_request(path, &Params::default(), &good),
        Vec::<String>::new()
    );
    let bad = form(&[
        ("Weight", "heavy"),
        ("Priority", "10"),
        ("Enabled", "yes"),
        ("FriendlyNam", "x"),
    ]);
    let problems = op.check_request(
        "/v1/Trunks/TKnot-a-sid/OriginationUrls",
        &form(&[("PageSize", "5")]),
        &bad,
    );
    for expected in [
        "path parameter TrunkSid",
        "form parameter Weight",
        "form parameter Enabled",
        "unknown form parameter FriendlyNam",
        "unknown query parameter PageSize",
        "missing required form parameter SipUrl",
        "missing required form parameter FriendlyName",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{expected} not reported in {problems:?}"
        );
    }
    let list = specs
        .api
        .find(
            "GET",
            "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/IncomingPhoneNumbers.json",
        )
        .unwrap();
    let p = list.check_request(
        "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/IncomingPhoneNumbers.json",
        &form(&[("PageSize", "1001")]),
        &Params::default(),
    );
    assert!(p.iter().any(|x| x.contains("maximum 1000")), "{p:?}");
    assert!(specs.trunking.find("PUT", "/v1/Trunks").is_none());
    assert!(specs.trunking.find("GET", "/v1/Nope").is_none());
}

fn origination(sip: &str) -> RouteTargetSpec {
    RouteTargetSpec {
        target: OriginationTarget::with_defaults(SipTarget::parse(sip).unwrap()),
        enabled: true,
        name: "trunkline".into(),
    }
}

/// Drive every port method, including paging, filters and error paths.
async fn exercise_everything(w: &World) {
    let creds = w.creds();
    let c = &w.carrier;
    let numbers = w.emu.seed_numbers(&w.account.sid, 5);

    c.verify(&creds).await.unwrap();
    c.verify(&w.account.auth_token_credentials()).await.unwrap();
    let mut q = NumberQuery {
        page_size: 2,
        cursor: None,
        e164: None,
    };
    loop {
        let page = c.list_numbers(&creds, &q).await.unwrap();
        match page.next_cursor {
            Some(cur) => q.cursor = Some(cur),
            None => break,
        }
    }
    c.list_numbers(
        &creds,
        &NumberQuery {
            page_size: 10,
            cursor: None,
            e164: Some(numbers[0].e164.clone()),
        },
    )
    .await
    .unwrap();
    c.fetch_number(&creds, &numbers[0].sid.clone().into())
        .await
        .unwrap();

    let trunk = c
        .create_route(
            &creds,
            &RouteSpec {
                name: "trunkline-conformance".into(),
            },
        )
        .await
        .unwrap();
    for i in 0..3 {
        w.emu.add_trunk(&w.account.sid, Some(&format!("other {i}")));
    }
    c.find_routes(&creds, "trunkline-conformance")
        .await
        .unwrap();
    c.fetch_route(&creds, &trunk.id).await.unwrap();

    let ou = c
        .create_route_target(&creds, &trunk.id, &origination("sip:a.example.com"))
        .await
        .unwrap();
    for i in 0..3 {
        c.create_route_target(
            &creds,
            &trunk.id,
            &origination(&format!("sip:b{i}.example.com")),
        )
        .await
        .unwrap();
    }
    c.list_route_targets(&creds, &trunk.id).await.unwrap();
    c.update_route_target(
        &creds,
        &trunk.id,
        &ou.id,
        &origination("sip:c.example.com:5070"),
    )
    .await
    .unwrap();
    c.delete_route_target(&creds, &trunk.id, &ou.id)
        .await
        .unwrap();

    for n in &numbers[..3] {
        c.attach_number(&creds, &trunk.id, &n.sid.clone().into())
            .await
            .unwrap();
    }
    // Already attached: the refusal and the re-read.
    c.attach_number(&creds, &trunk.id, &numbers[0].sid.clone().into())
        .await
        .unwrap();
    c.list_route_numbers(&creds, &trunk.id).await.unwrap();
    c.detach_number(&creds, &trunk.id, &numbers[0].sid.clone().into())
        .await
        .unwrap();
    let app = ApplicationSid::parse(&format!("AP{}", "a".repeat(32))).unwrap();
    c.restore_routing(
        &creds,
        &numbers[0].sid.clone().into(),
        &VoiceConfig {
            voice_url: Some("https://example.com/voice".into()),
            voice_method: Some("GET".into()),
            voice_fallback_url: None,
            voice_fallback_method: None,
            voice_application_sid: Some(app),
            status_callback: None,
        }
        .to_routing(),
    )
    .await
    .unwrap();
    for n in &numbers[1..3] {
        c.detach_number(&creds, &trunk.id, &n.sid.clone().into())
            .await
            .unwrap();
    }
    // Termination: created, found again (a second ensure), inspected, removed.
    let spec = TerminationSpec {
        name: "trunkline-outbound-conformance".into(),
        username: "tlconformance".into(),
        password: SecretString::from("Conformance0Password1"),
        allowed_countries: vec!["US".into()],
    };
    c.ensure_termination(&creds, &trunk.id, &spec)
        .await
        .unwrap();
    c.ensure_termination(&creds, &trunk.id, &spec)
        .await
        .unwrap();
    let state = c
        .inspect_termination(&creds, &trunk.id, &spec.name, &spec.username)
        .await
        .unwrap();
    assert!(state.credentials_attached, "{state:?}");
    c.remove_termination(&creds, &trunk.id, &spec.name)
        .await
        .unwrap();
    c.delete_route(&creds, &trunk.id).await.unwrap();

    // The number market: a search of each type with every filter, a purchase (which looks
    // for the number in the account first), and its release.
    let for_sale = E164::parse("+14157770001").unwrap();
    w.emu.add_for_sale("US", "Local", &for_sale);
    w.emu
        .add_for_sale("US", "TollFree", &E164::parse("+18885550123").unwrap());
    w.emu
        .add_for_sale("US", "Mobile", &E164::parse("+14157770002").unwrap());
    for number_type in [NumberType::Local, NumberType::TollFree, NumberType::Mobile] {
        c.search_available_numbers(
            &creds,
            &AvailableNumberQuery {
                country: "US".into(),
                number_type,
                area_code: Some("415".into()),
                prefix: None,
                contains: Some("777".into()),
                limit: 5,
            },
        )
        .await
        .unwrap();
    }
    let bought = c.purchase_number(&creds, &for_sale).await.unwrap();
    assert_eq!(bought.e164, for_sale);
    c.release_number(&creds, &bought.id).await.unwrap();
}

#[tokio::test]
async fn every_request_the_adapter_sends_conforms_and_every_operation_is_covered() {
    let specs = TwilioSpecs::load().unwrap();
    let w = World::with(|c| c.list_page_size = 2);
    exercise_everything(&w).await;
    let requests: Vec<RecordedRequest> = w.emu.requests();
    assert!(requests.len() > 30, "only {} requests", requests.len());

    let mut problems = Vec::new();
    let mut covered = BTreeSet::new();
    for r in &requests {
        let Some(op) = specs.for_host(r.host).find(&r.method, &r.path) else {
            problems.push(format!("{} {} is not in the spec", r.method, r.path));
            continue;
        };
        let id = op.operation_id().unwrap_or_default().to_owned();
        let ours = TwilioOperation::ALL
            .into_iter()
            .find(|o| o.info().operation_id == id);
        match ours {
            Some(o) => {
                assert_eq!(spec_host(o.info().host), r.host, "{id} on the wrong host");
                for (name, _) in &r.query.0 {
                    if !o.info().query.contains(&name.as_str()) {
                        problems.push(format!("{id}: query {name} is not in the catalogue"));
                    }
                }
                for (name, _) in &r.form.0 {
                    if !o.info().form.contains(&name.as_str()) {
                        problems.push(format!("{id}: form {name} is not in the catalogue"));
                    }
                }
            }
            None => problems.push(format!("{id} is not in the adapter's catalogue")),
        }
        if r.method == "POST" {
            let ct = r.content_type.as_deref().unwrap_or_default();
            if !ct.starts_with("application/x-www-form-urlencoded") {
                problems.push(format!("{id}: POST body is {ct:?}, not a form"));
            }
        }
        problems.extend(op.check_request(&r.path, &r.query, &r.form));
        assert_eq!(
            r.route.map(trunkline_testkit::twilio::Route::as_str),
            Some(id.as_str()),
            "emulator routed differently"
        );
        covered.insert(id);
    }
    assert!(problems.is_empty(), "{problems:#?}");
    let catalogue: BTreeSet<String> = TwilioOperation::ALL
        .iter()
        .map(|o| o.info().operation_id.to_owned())
        .collect();
    assert_eq!(
        covered, catalogue,
        "every operation in the catalogue was exercised"
    );
}
