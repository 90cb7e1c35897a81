DROP TABLE outbound_calls;
DROP TABLE outbound_numbers;
DROP TABLE outbound_routes;
