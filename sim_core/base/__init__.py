"""The ground floor: what every other layer uses and that uses nothing of the project.

Errors fit to show a user, self-documenting settings, shared labels, the divergence scores,
reading and writing files safely, the workspace folder, seeded choices.
"""
