-- Quantities are decimals, summed exactly: ten events of 0.1 total 1, not 0.9999999999999999, and
-- integer totals past 2^53 keep every unit. A JSON number's quantity is stored as the shortest
-- decimal that reads back as it (the driver sends `String(n)`); reads cast sums to float8, the
-- nearest double of the exact sum. Stored values convert through their shortest text, so each
-- keeps exactly the double it was (float8 → numeric directly would keep only 15 digits, and lose
-- units of integer sums past 10^15); sums already drifted by binary fractions stay as they were.
-- Each statement rewrites its table: on a large installation, run it in a maintenance window.
alter table usage_log alter column quantity type numeric using quantity::text::numeric;
alter table usage_events alter column quantity type numeric using quantity::text::numeric;
alter table usage_agg_minute alter column quantity type numeric using quantity::text::numeric;
alter table usage_agg_quarter alter column quantity type numeric using quantity::text::numeric;
alter table usage_agg_hour alter column quantity type numeric using quantity::text::numeric;
alter table usage_agg_day alter column quantity type numeric using quantity::text::numeric;
alter table usage_agg_month alter column quantity type numeric using quantity::text::numeric;
alter table usage_agg_user_day alter column quantity type numeric using quantity::text::numeric;
