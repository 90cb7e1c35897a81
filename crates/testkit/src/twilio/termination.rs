//! Termination: SIP credential lists and their credentials (2010 API) and the credential
//! lists a trunk authenticates outbound calls with (Trunking v1), with Twilio's rules: a
//! list's friendly name is unique in the account and at most 64 characters; a username is
//! at most 32 characters and unique in its list; a password has at least 12 characters, a
//! digit, a lower- and an upper-case letter (all refused with 21240 otherwise); passwords
//! are never shown back; deleting a list detaches it from every trunk.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::routes::{Params, PathIds, Route};
use super::state::{ApiError, Principal, Store, codes, iso8601, new_sid, rfc2822, v1_list};

/// Twilio's code for a refused credential or a duplicate list name.
const INVALID_CREDENTIAL: u32 = 21240;

#[derive(Clone)]
pub(crate) struct CredentialList {
    pub sid: String,
    pub account_sid: String,
    pub friendly_name: String,
    pub created: DateTime<Utc>,
}

#[derive(Clone)]
pub(crate) struct SipCredential {
    pub sid: String,
    pub account_sid: String,
    pub list_sid: String,
    pub username: String,
    /// Kept so tests can check what trunkline set; never rendered.
    pub password: String,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

fn invalid(message: &str) -> ApiError {
    ApiError::new(400, INVALID_CREDENTIAL, message)
}

fn strong(password: &str) -> bool {
    password.chars().count() >= 12
        && password.chars().any(|c| c.is_ascii_digit())
        && password.chars().any(|c| c.is_ascii_lowercase())
        && password.chars().any(|c| c.is_ascii_uppercase())
}

fn required(v: Option<&String>) -> Result<&str, ApiError> {
    v.map(String::as_str)
        .ok_or_else(|| ApiError::new(404, codes::NOT_FOUND, "Not found"))
}

impl Store {
    /// One termination route; `bases` are the (api, trunking) base URLs.
    pub(crate) fn serve_termination(
        &mut self,
        route: Route,
        bases: (&str, &str),
        p: &Principal,
        ids: &PathIds,
        query: &Params,
        form: &Params,
    ) -> Result<(u16, Option<Value>), ApiError> {
        let (_api, trunking) = bases;
        match route {
            Route::ListSipCredentialList => {
                let account = self.sip_account(p, ids)?;
                let lists: Vec<Value> = self
                    .credential_lists
                    .values()
                    .filter(|l| l.account_sid == account)
                    .map(list_json)
                    .collect();
                let path = format!("/2010-04-01/Accounts/{account}/SIP/CredentialLists.json");
                Ok((
                    200,
                    Some(page_2010(&path, "credential_lists", lists, query)?),
                ))
            }
            Route::CreateSipCredentialList => {
                let account = self.sip_account(p, ids)?;
                let name = form
                    .get("FriendlyName")
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| {
                        ApiError::bad_param("Missing required parameter FriendlyName")
                    })?;
                if name.chars().count() > 64 {
                    return Err(invalid("FriendlyName must be at most 64 characters"));
                }
                if self
                    .credential_lists
                    .values()
                    .any(|l| l.account_sid == account && l.friendly_name == name)
                {
                    return Err(invalid("A credential list with this FriendlyName exists"));
                }
                let list = CredentialList {
                    sid: new_sid("CL"),
                    account_sid: account.clone(),
                    friendly_name: name.to_owned(),
                    created: Utc::now(),
                };
                let json = list_json(&list);
                self.credential_lists.insert(list.sid.clone(), list);
                Ok((201, Some(json)))
            }
            Route::DeleteSipCredentialList => {
                let account = self.sip_account(p, ids)?;
                let sid = required(ids.sid.as_ref())?;
                self.owned_list(&account, sid)?;
                self.credential_lists.remove(sid);
                self.credentials.retain(|_, c| c.list_sid != sid);
                self.trunk_credential_lists.retain(|(_, l)| l != sid);
                Ok((204, None))
            }
            Route::ListSipCredential => {
                let account = self.sip_account(p, ids)?;
                let list = required(ids.list.as_ref())?;
                self.owned_list(&account, list)?;
                let items: Vec<Value> = self
                    .credentials
                    .values()
                    .filter(|c| c.list_sid == list)
                    .map(credential_json)
                    .collect();
                let path = format!(
                    "/2010-04-01/Accounts/{account}/SIP/CredentialLists/{list}/Credentials.json"
                );
                Ok((200, Some(page_2010(&path, "credentials", items, query)?)))
            }
            Route::CreateSipCredential => {
                let account = self.sip_account(p, ids)?;
                let list = required(ids.list.as_ref())?.to_owned();
                self.owned_list(&account, &list)?;
                let username = form.get("Username").unwrap_or_default();
                let password = form.get("Password").unwrap_or_default();
                if username.is_empty() || username.chars().count() > 32 {
                    return Err(invalid("Username must be 1 to 32 characters"));
                }
                if !strong(password) {
                    return Err(invalid(
                        "Password must be at least 12 characters with a digit, a lower- and an upper-case letter",
                    ));
                }
                if self
                    .credentials
                    .values()
                    .any(|c| c.list_sid == list && c.username == username)
                {
                    return Err(invalid("The username exists in this credential list"));
                }
                let now = Utc::now();
                let credential = SipCredential {
                    sid: new_sid("CR"),
                    account_sid: account,
                    list_sid: list,
                    username: username.to_owned(),
                    password: password.to_owned(),
                    created: now,
                    updated: now,
                };
                let json = credential_json(&credential);
                self.credentials.insert(credential.sid.clone(), credential);
                Ok((201, Some(json)))
            }
            Route::UpdateSipCredential => {
                let account = self.sip_account(p, ids)?;
                let list = required(ids.list.as_ref())?;
                self.owned_list(&account, list)?;
                let sid = required(ids.sid.as_ref())?;
                let credential = self
                    .credentials
                    .get_mut(sid)
                    .filter(|c| c.list_sid == list)
                    .ok_or_else(|| ApiError::new(404, codes::NOT_FOUND, "Not found"))?;
                if let Some(password) = form.get("Password") {
                    if !strong(password) {
                        return Err(invalid(
                            "Password must be at least 12 characters with a digit, a lower- and an upper-case letter",
                        ));
                    }
                    password.clone_into(&mut credential.password);
                    credential.updated = Utc::now();
                }
                Ok((200, Some(credential_json(credential))))
            }
            Route::DeleteSipCredential => {
                let account = self.sip_account(p, ids)?;
                let list = required(ids.list.as_ref())?;
                self.owned_list(&account, list)?;
                let sid = required(ids.sid.as_ref())?;
                if self.credentials.get(sid).is_none_or(|c| c.list_sid != list) {
                    return Err(ApiError::new(404, codes::NOT_FOUND, "Not found"));
                }
                self.credentials.remove(sid);
                Ok((204, None))
            }
            Route::ListCredentialList => {
                self.authorize_trunking(p)?;
                let trunk = required(ids.trunk.as_ref())?;
                self.trunk_of(p, trunk)?;
                let items: Vec<(String, Value)> = self
                    .trunk_credential_lists
                    .iter()
                    .filter(|(t, _)| t == trunk)
                    .filter_map(|(_, l)| self.credential_lists.get(l))
                    .map(|l| (l.sid.clone(), attachment_json(trunking, trunk, l)))
                    .collect();
                let path = format!("/v1/Trunks/{trunk}/CredentialLists");
                let body = v1_list(
                    trunking,
                    &path,
                    "credential_lists",
                    query,
                    &items,
                    |(sid, _)| sid,
                    |(_, v)| v.clone(),
                )?;
                Ok((200, Some(body)))
            }
            Route::CreateCredentialList => {
                self.authorize_trunking(p)?;
                let trunk = required(ids.trunk.as_ref())?.to_owned();
                self.trunk_of(p, &trunk)?;
                let list = form.get("CredentialListSid").unwrap_or_default().to_owned();
                let found = self
                    .credential_lists
                    .get(&list)
                    .filter(|l| l.account_sid == p.account())
                    .cloned()
                    .ok_or_else(|| {
                        ApiError::bad_param(
                            "CredentialListSid is not a credential list of this account",
                        )
                    })?;
                if !self.trunk_credential_lists.insert((trunk.clone(), list)) {
                    return Err(ApiError::new(
                        409,
                        codes::CONFLICT,
                        "The credential list is already associated with this trunk",
                    ));
                }
                Ok((201, Some(attachment_json(trunking, &trunk, &found))))
            }
            Route::DeleteCredentialList => {
                self.authorize_trunking(p)?;
                let trunk = required(ids.trunk.as_ref())?.to_owned();
                self.trunk_of(p, &trunk)?;
                let list = required(ids.sid.as_ref())?.to_owned();
                if !self.trunk_credential_lists.remove(&(trunk, list)) {
                    return Err(ApiError::new(404, codes::NOT_FOUND, "Not found"));
                }
                Ok((204, None))
            }
            _ => Err(ApiError::new(404, codes::NOT_FOUND, "Not found")),
        }
    }

    /// The 2010 SIP resources need trunking permission besides the path's account.
    fn sip_account(&self, p: &Principal, ids: &PathIds) -> Result<String, ApiError> {
        let account = required(ids.account.as_ref())?;
        Self::authorize_account_path(p, account)?;
        self.authorize_trunking(p)?;
        Ok(account.to_owned())
    }

    fn owned_list(&self, account: &str, sid: &str) -> Result<&CredentialList, ApiError> {
        self.credential_lists
            .get(sid)
            .filter(|l| l.account_sid == account)
            .ok_or_else(|| ApiError::new(404, codes::NOT_FOUND, "Not found"))
    }

    fn trunk_of(&self, p: &Principal, sid: &str) -> Result<(), ApiError> {
        self.trunks
            .get(sid)
            .filter(|t| t.account_sid == p.account())
            .map(drop)
            .ok_or_else(|| ApiError::not_found(&format!("/v1/Trunks/{sid}")))
    }
}

fn list_json(l: &CredentialList) -> Value {
    let uri = format!(
        "/2010-04-01/Accounts/{}/SIP/CredentialLists/{}.json",
        l.account_sid, l.sid
    );
    json!({
        "account_sid": l.account_sid,
        "date_created": rfc2822(l.created),
        "date_updated": rfc2822(l.created),
        "friendly_name": l.friendly_name,
        "sid": l.sid,
        "subresource_uris": {
            "credentials": format!(
                "/2010-04-01/Accounts/{}/SIP/CredentialLists/{}/Credentials.json",
                l.account_sid, l.sid
            ),
        },
        "uri": uri,
    })
}

fn credential_json(c: &SipCredential) -> Value {
    json!({
        "sid": c.sid,
        "account_sid": c.account_sid,
        "credential_list_sid": c.list_sid,
        "username": c.username,
        "date_created": rfc2822(c.created),
        "date_updated": rfc2822(c.updated),
        "uri": format!(
            "/2010-04-01/Accounts/{}/SIP/CredentialLists/{}/Credentials/{}.json",
            c.account_sid, c.list_sid, c.sid
        ),
    })
}

fn attachment_json(trunking: &str, trunk: &str, l: &CredentialList) -> Value {
    json!({
        "account_sid": l.account_sid,
        "sid": l.sid,
        "trunk_sid": trunk,
        "friendly_name": l.friendly_name,
        "date_created": iso8601(l.created),
        "date_updated": iso8601(l.created),
        "url": format!("{trunking}/v1/Trunks/{trunk}/CredentialLists/{}", l.sid),
    })
}

/// A 2010 list page holding every item (the emulator's credential lists are short).
fn page_2010(path: &str, key: &str, items: Vec<Value>, query: &Params) -> Result<Value, ApiError> {
    let size = match query.get("PageSize") {
        None => 50,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::bad_param("PageSize must be 1 to 1000"))?,
    };
    let end = items.len().saturating_sub(1);
    let uri = format!("{path}?PageSize={size}&Page=0");
    let mut body = serde_json::Map::new();
    body.insert("end".to_owned(), json!(end));
    body.insert("first_page_uri".to_owned(), json!(uri));
    body.insert("next_page_uri".to_owned(), Value::Null);
    body.insert("page".to_owned(), json!(0));
    body.insert("page_size".to_owned(), json!(size));
    body.insert("previous_page_uri".to_owned(), Value::Null);
    body.insert("start".to_owned(), json!(0));
    body.insert("uri".to_owned(), json!(uri));
    body.insert(key.to_owned(), Value::Array(items));
    Ok(Value::Object(body))
}
