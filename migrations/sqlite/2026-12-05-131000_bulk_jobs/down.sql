DROP TABLE bulk_job_items;
DROP TABLE bulk_jobs;
