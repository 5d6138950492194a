-- The part of a hold taken from the tenant's promotional (granted) credit, which is consumed
-- before paid credit; a void or a capture's refund gives each part back where it came from.
ALTER TABLE holds ADD COLUMN promo_part BIGINT NOT NULL DEFAULT 0;
