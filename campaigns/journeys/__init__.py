"""Journeys: a member enrols on a trigger and gets each step on its day.

models: Journey, JourneyStep, Enrolment · services: triggers, enrol, exits,
journeys_run · admin: journeys with their report, enrolments · tasks: the
10-minute beat. Steps are sent through the outbox core (campaigns.sending)."""
