-- Older versions do not know `cancelled`; `gave_up` is final for them too (never retried).
UPDATE calls SET dispatch_status = 'gave_up' WHERE dispatch_status = 'cancelled';
ALTER TABLE calls DROP CONSTRAINT calls_dispatch_status_check;
ALTER TABLE calls ADD CONSTRAINT calls_dispatch_status_check
    CHECK (dispatch_status IN ('none', 'claimed', 'dispatched', 'failed', 'by_rule', 'gave_up'));
