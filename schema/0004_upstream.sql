-- Messages for the national top-level node, written in the transaction of the change that causes
-- them and delivered in order per lane (a prefix, or the daily statistics), each with an id the
-- receiving side uses to ignore a repeated delivery.
create table outbox (
    id             bigserial primary key,
    message_id     uuid not null unique,
    lane           text not null,           -- delivery order holds within a lane
    kind           text not null,           -- 'prefix' or 'statistics'
    ref            text,                    -- for daily statistics: the day, so it is queued once
    body           json not null,
    created_at     timestamptz not null default now(),
    attempts       integer not null default 0,
    next_attempt   timestamptz not null default now(),
    last_error     text,
    delivered_at   timestamptz
);
create index outbox_pending on outbox (lane, id) where delivered_at is null;
create unique index outbox_daily_once on outbox (kind, ref) where ref is not null;
