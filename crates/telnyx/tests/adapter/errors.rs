//! Telnyx's answers become trunkline's error codes, with Telnyx's code kept, and never
//! the key.

use secrecy::SecretString;
use trunkline_core::ErrorCode;
use trunkline_telnyx::{ConnectionId, NewConnection, NumberId, NumberQuery, Transport};

use crate::common::World;

#[tokio::test]
async fn a_refused_key_is_auth_invalid_and_never_shows() {
    let w = World::new();
    let bad = SecretString::from("KEYthisisnotakey0000".to_owned());
    let e = w.client.verify(&bad).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::AuthInvalid);
    assert_eq!(e.provider_code.as_deref(), Some("10009"));
    let e = w
        .client
        .list_numbers(
            &bad,
            &NumberQuery {
                page_size: 5,
                ..NumberQuery::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::AuthInvalid);
    for shown in [format!("{e:?}"), e.to_string(), format!("{:?}", w.client)] {
        assert!(!shown.contains("thisisnotakey"), "{shown}");
        assert!(!shown.contains(&w.account.api_key), "{shown}");
    }
    // One attempt each: a 401 is not retried.
    assert_eq!(w.emu.requests().len(), 3);
    assert!(w.emu.requests().iter().all(|r| r.bearer));
}

#[tokio::test]
async fn a_key_without_number_permissions_is_insufficient_permissions() {
    let w = World::new();
    let n = w.emu.seed_numbers(&w.account.id, 1);
    let limited = w.emu.add_api_key(&w.account.id, false);
    let key = SecretString::from(limited.key);
    let e = w
        .client
        .get_number(&key, &NumberId::parse(&n[0].id).unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InsufficientPermissions);
    assert_eq!(e.provider_code.as_deref(), Some("10010"));
    let e = w
        .client
        .list_numbers(
            &key,
            &NumberQuery {
                page_size: 5,
                ..NumberQuery::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InsufficientPermissions);
}

#[tokio::test]
async fn unknown_ids_are_not_found() {
    let w = World::new();
    let other = w.emu.add_account("other");
    let theirs = w.emu.seed_numbers(&other.id, 1);
    for id in ["1", theirs[0].id.as_str()] {
        let id = NumberId::parse(id).unwrap();
        let e = w.client.get_number(&w.key, &id).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::NumberNotFound, "{id}");
        assert_eq!(e.provider_code.as_deref(), Some("10005"));
        let e = w
            .client
            .set_number_connection(&w.key, &id, None)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::NumberNotFound);
    }
    assert_eq!(
        w.emu.number(&theirs[0].id).unwrap().account,
        other.id,
        "untouched"
    );
}

#[tokio::test]
async fn validation_errors_name_telnyxs_field() {
    let w = World::new();
    let n = w.emu.seed_numbers(&w.account.id, 1);
    // A connection of another account is not one Telnyx lets this account use.
    let other = w.emu.add_account("other");
    let theirs = ConnectionId::parse(&w.emu.add_connection(&other.id, "theirs")).unwrap();
    let e = w
        .client
        .set_number_connection(&w.key, &NumberId::parse(&n[0].id).unwrap(), Some(&theirs))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ValidationFailed);
    assert_eq!(e.provider_code.as_deref(), Some("10015"));
    assert!(e.message.contains("connection_id"), "{e:?}");

    // A connection still in use cannot be deleted.
    let conn = w
        .client
        .create_connection(
            &w.key,
            &NewConnection {
                name: "trunkline-in-use".into(),
                transport: Transport::Tcp,
            },
        )
        .await
        .unwrap();
    w.emu
        .set_number_connection(&n[0].id, Some(conn.id.as_str()));
    let e = w
        .client
        .delete_connection(&w.key, &conn.id)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ValidationFailed);
    assert!(w.emu.connection(conn.id.as_str()).is_some());
}
