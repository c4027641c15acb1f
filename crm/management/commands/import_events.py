from crm.management.commands._importing import ImportCommand


class Command(ImportCommand):
    help = "Import events from a CSV or .xlsx file (upsert: importing a file twice is the same as once)."
    kind = "events"
