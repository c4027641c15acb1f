import json

from django.core.management.base import BaseCommand

from campaigns.management.commands.campaign_launch import campaign_by_name_or_id
from campaigns.reports import campaign_report, report_json


class Command(BaseCommand):
    help = "Print what a campaign achieved, per variant and for the control group."

    def add_arguments(self, parser):
        parser.add_argument("campaign", help="name or id")
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args, campaign: str, json: bool = False, **options):
        report = report_json(campaign_report(campaign_by_name_or_id(campaign)))
        if json:
            self.stdout.write(_dumps(report))
            return
        self.stdout.write(f"{report['campaign']} ({report['status']}), conversion window {report['conversion_days']} days")
        header = f"{'variant':<10}{'members':>9}{'sent':>8}{'failed':>8}{'skipped':>9}{'converted':>11}{'rate':>8}{'revenue':>12}{'uplift':>9}{'p':>8}"
        self.stdout.write(header)
        for row in report["rows"]:
            rate = f"{row['conversion_rate'] * 100:.1f}%" if row["conversion_rate"] is not None else "—"
            uplift = f"{row['uplift'] * 100:+.1f}pp" if row["uplift"] is not None else "—"
            p = f"{row['p_value']:.3f}" if row["p_value"] is not None else "—"
            sent = row["held_back"] if row["is_control"] else row["sent"]
            self.stdout.write(
                f"{row['label']:<10}{row['members']:>9}{sent:>8}{row['failed']:>8}{sum(row['skipped'].values()):>9}"
                f"{row['converted']:>11}{rate:>8}{row['revenue']:>12}{uplift:>9}{p:>8}"
            )


def _dumps(report) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2)
