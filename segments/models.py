"""Tiers, circles and churn: built in the tiers issue."""
