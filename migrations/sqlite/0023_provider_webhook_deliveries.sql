-- Provider webhook deliveries already received, per job, by what identifies one (for
-- Apiframe, the SHA-256 of the body: its signature carries no timestamp, so a captured
-- delivery would verify forever). A delivery seen before is refused as a replay.
CREATE TABLE provider_webhook_deliveries (
    video_id    TEXT NOT NULL,
    delivery    TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (video_id, delivery)
);
