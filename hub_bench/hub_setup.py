"""Set up the hub under benchmark, in a process with the hub's environment (its database, its settings).

    python -m hub_bench.hub_setup '{"sandbox_url", "app_token", "stores": [[account, app_key], ...],
                                    "adapter", "adapter_settings", "tokens"}'

Migrates the fresh database (which creates the schedules, due at once, as on a fresh install) and
creates each store (``intake_mode``) with one binding of ``adapter`` (``adapter_settings``). Nothing is enqueued: the
cluster starts the way it really does, with its schedules. With ``tokens`` it issues an ERP API
token per binding (the way back). Prints one JSON line: ``{"account_ids", "rate_limits", "tokens"}``.
``{"register_hooks": true}`` instead registers every hook-mode store's hook in VTEX (the web server
must answer at PUBLIC_BASE_URL) and prints ``{"hooks": [{"store", "ok", "message"}]}``.
Django is set up here, from DJANGO_SETTINGS_MODULE (default ``integration.settings``).
"""
import json
import os
import sys


def setup_hub(spec):
    from django.core.management import call_command

    from integration.models import Account, AdapterBinding, ErpToken
    from integration.pipeline import route_caps

    if spec.get("register_hooks"):
        # The hub's own registration (what the daily schedule does), once its web server answers.
        from integration.vtex_push.registration import hook_accounts, register_hook

        return {"hooks": [{"store": a.account_name, "ok": r.ok, "message": r.message}
                          for a in hook_accounts() for r in [register_hook(a)]]}
    call_command("migrate", verbosity=0, interactive=False)
    ids, tokens = [], {}
    for account_name, app_key in spec["stores"]:
        account = Account(name=f"Benchmark store {account_name}", account_name=account_name, app_key=app_key,
                          api_base_url=spec["sandbox_url"])
        account.app_token = spec["app_token"]
        account.intake_mode = spec.get("intake_mode", "feed")
        account.save()
        binding = AdapterBinding(account=account, adapter_key=spec.get("adapter", "webhook"), name="Benchmark ERP")
        binding.apply_settings(spec["adapter_settings"])
        binding.save()
        ids.append(account.pk)
        if spec.get("tokens"):
            tokens[account_name] = ErpToken.issue(binding, name="benchmark")[1]
    # The most any route may reach: with learned caps, the ceilings (the starting caps when nothing is learned).
    return {"account_ids": ids, "rate_limits": route_caps.highest_caps(), "tokens": tokens}


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
