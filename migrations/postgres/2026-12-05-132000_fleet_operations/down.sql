DROP TABLE integration_settings;
DROP TABLE purchased_numbers;
DROP TABLE connection_checks;
