//! Contract cases of `VoiceUrlStore`: webhook secrets, voice-URL bindings and the voice
//! webhook's one read.

use std::sync::Arc;

use trunkline_core::model::{
    ConnectionStatus, Integration, IntegrationStatus, NumberConnection, SealedSecret,
};
use trunkline_core::ports::{Store, VoiceBinding};
use trunkline_core::{ConnectionId, IntegrationId, ProviderKind};

use crate::fixtures::{account_id, bare_connection, customer, e164, integration, ts};

const TWILIO: ProviderKind = ProviderKind::Twilio;

fn sealed(tag: u8) -> SealedSecret {
    SealedSecret(vec![0x01, tag, 0x00, 0xff, 0x80])
}

fn binding(connection: ConnectionId, tag: u8) -> VoiceBinding {
    VoiceBinding {
        connection_id: connection,
        voice_url: format!("https://tl.example.com/telephony/providers/twilio/voice?v={tag}"),
        sip_username: format!("tl{tag:016x}"),
        sealed_sip_password: sealed(tag),
        created_at: ts(20),
        updated_at: ts(21),
    }
}

pub async fn voice_webhook_secret_follows_the_current_integration(store: Arc<dyn Store>) {
    let cust = customer("whs");
    let int = integration(&cust);
    let account = int
        .account_id
        .clone()
        .expect("a Twilio integration names its account");
    store.put_integration(&int).await.unwrap();
    assert!(!store.has_webhook_secret(&cust, TWILIO).await.unwrap());
    store
        .put_webhook_secret(&cust, TWILIO, int.id, Some(sealed(1)))
        .await
        .unwrap();
    assert!(store.has_webhook_secret(&cust, TWILIO).await.unwrap());
    assert!(
        !store
            .has_webhook_secret(&cust, ProviderKind::Telnyx)
            .await
            .unwrap()
    );
    // Replaced: the new secret is the one read.
    store
        .put_webhook_secret(&cust, TWILIO, int.id, Some(sealed(2)))
        .await
        .unwrap();
    let found = store.voice_route(TWILIO, &account, &e164(1)).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].sealed_webhook_secret, sealed(2));
    assert_eq!(found[0].integration_id, int.id);
    assert_eq!(found[0].customer_id, cust);
    assert!(found[0].connection.is_none());
    // A secret saved for another integration id (credentials deleted and saved again) is
    // not the current integration's.
    store
        .put_webhook_secret(&cust, TWILIO, IntegrationId::new(), Some(sealed(3)))
        .await
        .unwrap();
    assert!(!store.has_webhook_secret(&cust, TWILIO).await.unwrap());
    assert!(
        store
            .voice_route(TWILIO, &account, &e164(1))
            .await
            .unwrap()
            .is_empty()
    );
    // Removed.
    store
        .put_webhook_secret(&cust, TWILIO, int.id, Some(sealed(4)))
        .await
        .unwrap();
    store
        .put_webhook_secret(&cust, TWILIO, int.id, None)
        .await
        .unwrap();
    assert!(!store.has_webhook_secret(&cust, TWILIO).await.unwrap());
}

pub async fn voice_binding_round_trip_replace_delete(store: Arc<dyn Store>) {
    let cust = customer("vb");
    let conn = bare_connection(&cust, e164(2));
    store.save_connection(&conn).await.unwrap();
    assert_eq!(store.get_voice_binding(conn.id).await.unwrap(), None);
    let b = binding(conn.id, 7);
    store.save_voice_binding(&b).await.unwrap();
    assert_eq!(store.get_voice_binding(conn.id).await.unwrap(), Some(b));
    let replaced = VoiceBinding {
        sip_username: "tlreplaced".to_owned(),
        sealed_sip_password: sealed(8),
        updated_at: ts(30),
        ..binding(conn.id, 7)
    };
    store.save_voice_binding(&replaced).await.unwrap();
    let read = store.get_voice_binding(conn.id).await.unwrap().unwrap();
    assert_eq!(read.sip_username, "tlreplaced");
    assert_eq!(read.sealed_sip_password, sealed(8));
    assert_eq!(read.created_at, ts(20), "the first creation time is kept");
    assert_eq!(read.updated_at, ts(30));
    store.delete_voice_binding(conn.id).await.unwrap();
    store.delete_voice_binding(conn.id).await.unwrap();
    assert_eq!(store.get_voice_binding(conn.id).await.unwrap(), None);
}

pub async fn voice_route_finds_every_owner_of_the_account_in_one_read(store: Arc<dyn Store>) {
    // Two customers saved the same account; a third saved it without an auth token; a
    // fourth's integration is disabled.
    let (a, b, c, d) = (
        customer("vra"),
        customer("vrb"),
        customer("vrc"),
        customer("vrd"),
    );
    // Every integration is of the one account (fixtures give each a random one).
    let account = account_id();
    let of_account = |cust| Integration {
        account_id: Some(account.clone()),
        ..integration(cust)
    };
    let (ia, ib, ic) = (of_account(&a), of_account(&b), of_account(&c));
    let id = Integration {
        status: IntegrationStatus::Disabled,
        ..of_account(&d)
    };
    for i in [&ia, &ib, &ic, &id] {
        store.put_integration(i).await.unwrap();
    }
    for (cust, i, tag) in [(&a, &ia, 1), (&b, &ib, 2), (&d, &id, 4)] {
        store
            .put_webhook_secret(cust, TWILIO, i.id, Some(sealed(tag)))
            .await
            .unwrap();
    }
    let number = e164(3);
    // a: connected in voice-URL mode; b: a disconnected connection of the number.
    let ca = NumberConnection {
        integration_id: ia.id,
        status: ConnectionStatus::Connected,
        ..bare_connection(&a, number.clone())
    };
    let cb = NumberConnection {
        integration_id: ib.id,
        status: ConnectionStatus::Disconnected,
        ..bare_connection(&b, number.clone())
    };
    store.save_connection(&ca).await.unwrap();
    store.save_connection(&cb).await.unwrap();
    store.save_voice_binding(&binding(ca.id, 5)).await.unwrap();
    store.save_voice_binding(&binding(cb.id, 6)).await.unwrap();

    let mut found = store.voice_route(TWILIO, &account, &number).await.unwrap();
    found.sort_by(|x, y| x.customer_id.as_str().cmp(y.customer_id.as_str()));
    let owners: Vec<_> = found.iter().map(|f| f.customer_id.clone()).collect();
    assert_eq!(owners, [a.clone(), b.clone()], "{found:?}");
    let fa = &found[0];
    assert_eq!(fa.sealed_webhook_secret, sealed(1));
    let conn = fa.connection.as_ref().expect("a's live connection");
    assert_eq!(conn.connection_id, ca.id);
    assert_eq!(conn.integration_id, ia.id);
    assert_eq!(conn.status, ConnectionStatus::Connected);
    assert_eq!(conn.sip_target, ca.sip_target.to_string());
    assert_eq!(conn.binding.as_ref(), Some(&binding(ca.id, 5)));
    // b's only connection of the number is disconnected: b owns the account, not the call.
    assert!(found[1].connection.is_none(), "{:?}", found[1]);

    // Another number, another provider, another account: nobody.
    assert!(found.iter().all(|f| f.integration_id != ic.id));
    let other = store.voice_route(TWILIO, &account, &e164(4)).await.unwrap();
    assert!(other.iter().all(|f| f.connection.is_none()) && other.len() == 2);
    assert!(
        store
            .voice_route(ProviderKind::Telnyx, &account, &number)
            .await
            .unwrap()
            .is_empty()
    );
    let stranger =
        trunkline_core::CarrierAccountId::parse(&format!("AC{}", "9".repeat(32))).expect("valid");
    assert!(
        store
            .voice_route(TWILIO, &stranger, &number)
            .await
            .unwrap()
            .is_empty()
    );
}
