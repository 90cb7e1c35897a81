//! The shared store contract, against a fresh schema per test in the database named by
//! `TRUNKLINE_TEST_POSTGRES_URL`.

mod support;

trunkline_store_contract::contract_tests!(support::fresh_store);
