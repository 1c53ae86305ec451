"""The desk's morning scans out of the box: the momentum breakout over the S&P 500 and the ASX top 300,
run by the daily chain after each exchange's ingest (a universe not loaded yet is skipped, not an error)."""
from django.db import migrations

DEFAULTS = [
    ("momentum-us", "SP500", "Momentum breakout over the S&P 500, every US evening"),
    ("momentum-asx", "ASX300", "Momentum breakout over the ASX top 300, every Sydney evening"),
]


def create(apps, schema_editor):
    SavedScreen = apps.get_model("scanner", "SavedScreen")
    for name, universe, description in DEFAULTS:
        SavedScreen.objects.get_or_create(name=name, defaults={
            "screen": "momentum_breakout", "universe": universe, "params": {}, "daily": True,
            "description": description})


def remove(apps, schema_editor):
    apps.get_model("scanner", "SavedScreen").objects.filter(name__in=[name for name, _, _ in DEFAULTS]).delete()


class Migration(migrations.Migration):

    dependencies = [("scanner", "0002_saved_screens_replays")]

    operations = [migrations.RunPython(create, remove)]
