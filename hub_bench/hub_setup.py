"""Set up the hub under benchmark, in a process with the hub's environment (its database, its settings).

    python -m hub_bench.hub_setup '{"sandbox_url", "erp_url", "app_key", "app_token", "account"}'

Migrates the fresh database, creates the store and its webhook binding to the loopback ERP, enqueues
the first feed cycle (as the minute schedule would) and prints one JSON line:
``{"account_id", "rate_limits"}``. Django is set up here, from DJANGO_SETTINGS_MODULE
(default ``integration.settings``).
"""
import json
import os
import sys


def setup_hub(spec):
    from django.core.management import call_command
    from django_q.tasks import async_task

    from integration.models import Account, AdapterBinding
    from integration.pipeline import route_caps

    call_command("migrate", verbosity=0, interactive=False)
    account = Account(name="Benchmark store", account_name=spec["account"], app_key=spec["app_key"],
                      api_base_url=spec["sandbox_url"])
    account.app_token = spec["app_token"]
    account.save()
    binding = AdapterBinding(account=account, adapter_key="webhook", name="Loopback ERP")
    binding.apply_settings({"url": spec["erp_url"], "signing_secret": "benchmark-signing-secret-0123456789"})
    binding.save()
    async_task("integration.tasks.run_feed_cycles", task_name="benchmark: first feed cycle")
    # The most any route may reach: with learned caps, the ceilings (the starting caps when nothing is learned).
    return {"account_id": account.pk, "rate_limits": route_caps.highest_caps()}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m hub_bench.hub_setup '<JSON spec>'", file=sys.stderr)
        return 2
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "integration.settings")
    import django

    django.setup()
    print(json.dumps(setup_hub(json.loads(argv[0]))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
