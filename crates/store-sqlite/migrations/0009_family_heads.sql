-- A refresh family's live heads (neither rotated nor revoked): each rotation retires the
-- family's other heads (docs/security.md, "Refresh replay"), and this keeps that lookup to the
-- one or two rows it concerns however long the family's history grows.
CREATE INDEX IF NOT EXISTS tokens_family_heads ON tokens (family_id)
    WHERE kind = 'refresh' AND rotated_at IS NULL AND revoked_at IS NULL;
