from crm.management.commands._importing import ImportCommand


class Command(ImportCommand):
    help = "Import order_lines from a CSV or .xlsx file (upsert: importing a file twice is the same as once)."
    kind = "order_lines"
