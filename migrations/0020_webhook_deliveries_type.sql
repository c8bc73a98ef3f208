-- The delivery log filtered by event type (GET …/deliveries?eventType=, the console's filter): one
-- type's deliveries of an endpoint, newest first, as an index range read in order. Through
-- webhook_deliveries_webhook_idx alone a rare type meant walking the endpoint's whole history.
-- Event types never change, so the index costs one entry per insert and nothing on status updates.
create index webhook_deliveries_type_idx on webhook_deliveries (webhook_id, event_type, created_at desc, id desc);
