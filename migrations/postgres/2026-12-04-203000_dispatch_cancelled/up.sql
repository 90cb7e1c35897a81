-- `cancelled`: the call ended before its agent was dispatched; nothing more is attempted.
ALTER TABLE calls DROP CONSTRAINT calls_dispatch_status_check;
ALTER TABLE calls ADD CONSTRAINT calls_dispatch_status_check
    CHECK (dispatch_status IN
        ('none', 'claimed', 'dispatched', 'failed', 'by_rule', 'gave_up', 'cancelled'));

-- A call that ended with its dispatch still due or claimed (written before cancelling
-- existed) is cancelled: nothing is dispatched into an ended call.
UPDATE calls SET dispatch_status = 'cancelled', claimant = NULL, claim_expires_at = NULL
    WHERE ended_at IS NOT NULL AND dispatch_status IN ('failed', 'claimed');
