-- Money columns hold integers only. SQLite stores whatever a statement computes, so an
-- arithmetic overflow (`balance - ?` past the 64-bit range) or a bound float would silently
-- become a REAL; these triggers make the database itself refuse it, on every path that
-- writes (sqlx or in place). PostgreSQL's BIGINT already refuses both.

CREATE TRIGGER ledger_accounts_money_insert BEFORE INSERT ON ledger_accounts
WHEN typeof(NEW.balance) NOT IN ('integer')
BEGIN
    SELECT RAISE(ABORT, 'money columns of ledger_accounts hold integers only');
END;

CREATE TRIGGER ledger_accounts_money_update BEFORE UPDATE OF balance ON ledger_accounts
WHEN typeof(NEW.balance) NOT IN ('integer')
BEGIN
    SELECT RAISE(ABORT, 'money columns of ledger_accounts hold integers only');
END;

CREATE TRIGGER ledger_entries_money_insert BEFORE INSERT ON ledger_entries
WHEN typeof(NEW.amount) NOT IN ('integer')
BEGIN
    SELECT RAISE(ABORT, 'money columns of ledger_entries hold integers only');
END;

CREATE TRIGGER ledger_entries_money_update BEFORE UPDATE OF amount ON ledger_entries
WHEN typeof(NEW.amount) NOT IN ('integer')
BEGIN
    SELECT RAISE(ABORT, 'money columns of ledger_entries hold integers only');
END;

CREATE TRIGGER holds_money_insert BEFORE INSERT ON holds
WHEN typeof(NEW.amount) NOT IN ('integer') OR typeof(NEW.promo_part) NOT IN ('integer')
BEGIN
    SELECT RAISE(ABORT, 'money columns of holds hold integers only');
END;

CREATE TRIGGER holds_money_update BEFORE UPDATE OF amount, promo_part ON holds
WHEN typeof(NEW.amount) NOT IN ('integer') OR typeof(NEW.promo_part) NOT IN ('integer')
BEGIN
    SELECT RAISE(ABORT, 'money columns of holds hold integers only');
END;

CREATE TRIGGER videos_money_insert BEFORE INSERT ON videos
WHEN typeof(NEW.cost_reserved) NOT IN ('integer') OR typeof(NEW.cost_charged) NOT IN ('integer', 'null') OR typeof(NEW.upstream_cost_micro_usd) NOT IN ('integer', 'null') OR typeof(NEW.cost_ceiling_micro) NOT IN ('integer', 'null') OR typeof(NEW.cost_baseline_micro) NOT IN ('integer', 'null') OR typeof(NEW.upstream_estimate_micro) NOT IN ('integer', 'null')
BEGIN
    SELECT RAISE(ABORT, 'money columns of videos hold integers only');
END;

CREATE TRIGGER videos_money_update BEFORE UPDATE OF cost_reserved, cost_charged, upstream_cost_micro_usd, cost_ceiling_micro, cost_baseline_micro, upstream_estimate_micro ON videos
WHEN typeof(NEW.cost_reserved) NOT IN ('integer') OR typeof(NEW.cost_charged) NOT IN ('integer', 'null') OR typeof(NEW.upstream_cost_micro_usd) NOT IN ('integer', 'null') OR typeof(NEW.cost_ceiling_micro) NOT IN ('integer', 'null') OR typeof(NEW.cost_baseline_micro) NOT IN ('integer', 'null') OR typeof(NEW.upstream_estimate_micro) NOT IN ('integer', 'null')
BEGIN
    SELECT RAISE(ABORT, 'money columns of videos hold integers only');
END;

CREATE TRIGGER tenants_money_insert BEFORE INSERT ON tenants
WHEN typeof(NEW.credit_floor) NOT IN ('integer')
BEGIN
    SELECT RAISE(ABORT, 'money columns of tenants hold integers only');
END;

CREATE TRIGGER tenants_money_update BEFORE UPDATE OF credit_floor ON tenants
WHEN typeof(NEW.credit_floor) NOT IN ('integer')
BEGIN
    SELECT RAISE(ABORT, 'money columns of tenants hold integers only');
END;

CREATE TRIGGER tenant_usage_money_insert BEFORE INSERT ON tenant_usage
WHEN typeof(NEW.credits) NOT IN ('integer')
BEGIN
    SELECT RAISE(ABORT, 'money columns of tenant_usage hold integers only');
END;

CREATE TRIGGER tenant_usage_money_update BEFORE UPDATE OF credits ON tenant_usage
WHEN typeof(NEW.credits) NOT IN ('integer')
BEGIN
    SELECT RAISE(ABORT, 'money columns of tenant_usage hold integers only');
END;

CREATE TRIGGER end_users_money_insert BEFORE INSERT ON end_users
WHEN typeof(NEW.credits_per_day) NOT IN ('integer', 'null') OR typeof(NEW.credits_per_month) NOT IN ('integer', 'null')
BEGIN
    SELECT RAISE(ABORT, 'money columns of end_users hold integers only');
END;

CREATE TRIGGER end_users_money_update BEFORE UPDATE OF credits_per_day, credits_per_month ON end_users
WHEN typeof(NEW.credits_per_day) NOT IN ('integer', 'null') OR typeof(NEW.credits_per_month) NOT IN ('integer', 'null')
BEGIN
    SELECT RAISE(ABORT, 'money columns of end_users hold integers only');
END;

CREATE TRIGGER tenant_quotas_money_insert BEFORE INSERT ON tenant_quotas
WHEN typeof(NEW.credits_per_day) NOT IN ('integer', 'null') OR typeof(NEW.credits_per_month) NOT IN ('integer', 'null')
BEGIN
    SELECT RAISE(ABORT, 'money columns of tenant_quotas hold integers only');
END;

CREATE TRIGGER tenant_quotas_money_update BEFORE UPDATE OF credits_per_day, credits_per_month ON tenant_quotas
WHEN typeof(NEW.credits_per_day) NOT IN ('integer', 'null') OR typeof(NEW.credits_per_month) NOT IN ('integer', 'null')
BEGIN
    SELECT RAISE(ABORT, 'money columns of tenant_quotas hold integers only');
END;
