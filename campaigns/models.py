"""Campaigns, deliveries and journeys: built in the campaigns issue."""
