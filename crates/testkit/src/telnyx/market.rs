//! Numbers for sale (`GET /available_phone_numbers`), number orders (`POST /number_orders`,
//! `GET /number_orders/{id}`) and releasing a number (`DELETE /phone_numbers/{id}`), as
//! Telnyx does them: an order is `pending` when created and completes later (here: after
//! it has been read `order_polls` times), and only then is the number in the account.

use chrono::Utc;
use serde_json::{Value, json};

use super::state::{ApiError, Store, timestamp};
use crate::twilio::Params;

/// A number in the emulator's inventory.
#[derive(Debug, Clone)]
pub(crate) struct ForSale {
    pub country: String,
    /// `local`, `toll_free` or `mobile`.
    pub kind: String,
}

/// A number order.
#[derive(Debug, Clone)]
pub(crate) struct Order {
    pub account: String,
    pub phone_number: String,
    /// Reads left before it completes.
    pub polls_left: u32,
    pub status: &'static str,
    pub created: chrono::DateTime<Utc>,
}

fn order_json(id: &str, o: &Order) -> Value {
    json!({"data": {
        "id": id,
        "record_type": "number_order",
        "phone_numbers_count": 1,
        "status": o.status,
        "requirements_met": true,
        "phone_numbers": [{
            "id": id,
            "record_type": "number_order_phone_number",
            "phone_number": o.phone_number,
            "status": o.status,
            "requirements_met": true,
        }],
        "sub_number_orders_ids": [],
        "created_at": timestamp(o.created),
        "updated_at": timestamp(Utc::now()),
    }})
}

impl Store {
    pub(crate) fn list_available(&self, query: &Params) -> Result<Value, ApiError> {
        let country = query.get("filter[country_code]");
        let kind = query.get("filter[phone_number_type]");
        let ndc = query.get("filter[national_destination_code]");
        let starts = query.get("filter[phone_number][starts_with]");
        let contains = query.get("filter[phone_number][contains]");
        let limit = match query.get("filter[limit]") {
            None => 50,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid_parameter("filter[limit]", "filter[limit] must be an integer")
                })?,
        };
        // NANP national part: after `+1`.
        let national = |e: &str| e.strip_prefix("+1").unwrap_or(e).to_owned();
        let data: Vec<Value> = self
            .for_sale
            .iter()
            .filter(|(_, s)| country.is_none_or(|c| s.country == c))
            .filter(|(_, s)| kind.is_none_or(|k| s.kind == k))
            .filter(|(e, _)| ndc.is_none_or(|n| national(e).starts_with(n)))
            .filter(|(e, _)| starts.is_none_or(|p| national(e).starts_with(p)))
            .filter(|(e, _)| contains.is_none_or(|p| e.contains(p)))
            .take(limit)
            .map(|(e, s)| {
                json!({
                    "record_type": "available_phone_number",
                    "phone_number": e,
                    "vanity_format": "",
                    "best_effort": false,
                    "quickship": true,
                    "reservable": true,
                    "region_information": [
                        {"region_type": "country_code", "region_name": s.country},
                        {"region_type": "state", "region_name": "CA"},
                        {"region_type": "location", "region_name": "San Francisco"},
                    ],
                    "cost_information": {"upfront_cost": "1.00", "monthly_cost": "1.00", "currency": "USD"},
                    "features": [{"name": "voice"}, {"name": "sms"}],
                })
            })
            .collect();
        let total = data.len();
        Ok(json!({
            "data": data,
            "meta": {"total_results": total, "best_effort_results": 0},
            "metadata": {"total_results": total, "best_effort_results": 0},
        }))
    }

    pub(crate) fn create_order(
        &mut self,
        account: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let numbers = body
            .and_then(|b| b.get("phone_numbers"))
            .and_then(Value::as_array)
            .filter(|a| a.len() == 1)
            .ok_or_else(|| {
                ApiError::invalid_field("/phone_numbers", "exactly one phone number is supported")
            })?;
        let phone_number = numbers[0]
            .get("phone_number")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ApiError::invalid_field("/phone_numbers/0/phone_number", "phone_number is required")
            })?
            .to_owned();
        let id = uuid::Uuid::new_v4().to_string();
        let order = Order {
            account: account.to_owned(),
            // Telnyx takes the order; whether the number can be had is decided when it
            // completes.
            phone_number,
            polls_left: self.order_polls,
            status: "pending",
            created: Utc::now(),
        };
        let rendered = order_json(&id, &order);
        self.orders.insert(id.clone(), order);
        if self.order_polls == 0 {
            self.complete_order(&id);
            return Ok(order_json(&id, &self.orders[&id]));
        }
        Ok(rendered)
    }

    fn complete_order(&mut self, id: &str) {
        let Some(order) = self.orders.get(id).cloned() else {
            return;
        };
        let status = if self.for_sale.remove(&order.phone_number).is_some() {
            super::insert_number(self, &order.account, &order.phone_number, None);
            "success"
        } else {
            "failure"
        };
        if let Some(o) = self.orders.get_mut(id) {
            o.status = status;
        }
    }

    pub(crate) fn get_order(&mut self, account: &str, id: &str) -> Result<Value, ApiError> {
        let order = self
            .orders
            .get_mut(id)
            .filter(|o| o.account == account)
            .ok_or_else(ApiError::not_found)?;
        if order.status == "pending" {
            order.polls_left = order.polls_left.saturating_sub(1);
            if order.polls_left == 0 {
                self.complete_order(id);
            }
        }
        Ok(order_json(id, &self.orders[id]))
    }

    pub(crate) fn delete_number(&mut self, account: &str, id: &str) -> Result<Value, ApiError> {
        let key = id
            .parse::<u64>()
            .ok()
            .filter(|i| self.numbers.get(i).is_some_and(|n| n.account == account))
            .ok_or_else(ApiError::not_found)?;
        let mut rendered = self.number_json(key, &self.numbers[&key]);
        // `PhoneNumberDeletedDetailed` has fewer fields than a retrieved number, and none of
        // them nullable: an unset one is left out.
        if let Some(o) = rendered.as_object_mut() {
            o.retain(|k, v| {
                !v.is_null()
                    && ![
                        "country_iso_alpha2",
                        "emergency_status",
                        "inbound_call_screening",
                        "source_type",
                    ]
                    .contains(&k.as_str())
            });
        }
        self.numbers.remove(&key);
        Ok(json!({"data": rendered}))
    }
}
