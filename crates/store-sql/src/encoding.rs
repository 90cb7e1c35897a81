//! How each backend's columns hold uuids, times and JSON documents, and the conversions to and
//! from the domain. A backend picks one module as `enc`; the code written once in this crate
//! (`rows!`, the port macros) converts through `enc::…` and so reads the same for both.
//!
//! Both modules have the same items with the same signatures: only the column types differ.

/// PostgreSQL's native columns: `uuid`, `timestamptz` and `jsonb` (diesel maps them to the
/// domain's own types, so the conversions are the identity).
pub mod native {
    use chrono::{DateTime, Utc};
    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use trunkline_core::ports::StoreError;
    use uuid::Uuid;

    use crate::codec::corrupt;

    pub type Id = Uuid;
    pub type Ts = DateTime<Utc>;
    pub type Json = serde_json::Value;

    pub fn id_to(id: Uuid) -> Id {
        id
    }

    pub fn id_from(_column: &str, id: Id) -> Result<Uuid, StoreError> {
        Ok(id)
    }

    pub fn ts_to(t: DateTime<Utc>) -> Ts {
        t
    }

    pub fn ts_from(_column: &str, t: Ts) -> Result<DateTime<Utc>, StoreError> {
        Ok(t)
    }

    pub fn json_to<T: Serialize>(column: &str, value: &T) -> Result<Json, StoreError> {
        serde_json::to_value(value).map_err(|e| StoreError::Other(format!("{column}: {e}")))
    }

    pub fn json_from<T: DeserializeOwned>(column: &str, value: Json) -> Result<T, StoreError> {
        serde_json::from_value(value).map_err(|e| corrupt(column, e))
    }
}

/// SQLite's storage forms: uuids as lower-case hyphenated TEXT (v7 ids sort in creation
/// order), times as INTEGER microseconds since the Unix epoch (UTC; exact to the microsecond
/// like PostgreSQL, and sortable), JSON as TEXT.
pub mod text {
    use chrono::{DateTime, Utc};
    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use trunkline_core::ports::StoreError;
    use uuid::Uuid;

    use crate::codec::corrupt;

    pub type Id = String;
    pub type Ts = i64;
    pub type Json = String;

    pub fn id_to(id: Uuid) -> Id {
        id.hyphenated().to_string()
    }

    #[expect(
        clippy::needless_pass_by_value,
        reason = "the same shape as `native::id_from`, where the column is a Copy Uuid"
    )]
    pub fn id_from(column: &str, id: Id) -> Result<Uuid, StoreError> {
        Uuid::parse_str(&id).map_err(|e| corrupt(column, e))
    }

    pub fn ts_to(t: DateTime<Utc>) -> Ts {
        t.timestamp_micros()
    }

    pub fn ts_from(column: &str, t: Ts) -> Result<DateTime<Utc>, StoreError> {
        DateTime::from_timestamp_micros(t).ok_or_else(|| corrupt(column, "time out of range"))
    }

    pub fn json_to<T: Serialize>(column: &str, value: &T) -> Result<Json, StoreError> {
        serde_json::to_string(value).map_err(|e| StoreError::Other(format!("{column}: {e}")))
    }

    #[expect(
        clippy::needless_pass_by_value,
        reason = "the same shape as `native::json_from`, which consumes its value"
    )]
    pub fn json_from<T: DeserializeOwned>(column: &str, value: Json) -> Result<T, StoreError> {
        serde_json::from_str(&value).map_err(|e| corrupt(column, e))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn times_keep_microseconds_and_sort_as_integers() {
            let t = DateTime::from_timestamp_micros(1_773_500_966_535_897).unwrap();
            assert_eq!(ts_from("t", ts_to(t)).unwrap(), t);
            let before_epoch = DateTime::from_timestamp_micros(-1).unwrap();
            assert!(ts_to(before_epoch) < ts_to(t));
            assert!(matches!(
                ts_from("t", i64::MAX),
                Err(StoreError::Corrupt(_))
            ));
        }

        #[test]
        fn uuid_text_sorts_like_v7_creation_order() {
            let a = Uuid::now_v7();
            std::thread::sleep(std::time::Duration::from_millis(2));
            let b = Uuid::now_v7();
            assert!(id_to(a) < id_to(b));
            assert_eq!(id_from("id", id_to(a)).unwrap(), a);
            assert!(matches!(
                id_from("id", "nope".to_owned()),
                Err(StoreError::Corrupt(_))
            ));
        }
    }
}
