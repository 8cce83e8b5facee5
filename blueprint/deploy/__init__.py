"""`python -m blueprint deploy`: the deployment in serverless.yml applied through the SCF API.

A local tool, shaped like Chalice's deployer: `config` reads the desired resources from serverless.yml into
plain models, `plan` compares them with the cloud (GetFunction, ListTriggers) and emits typed instructions,
each with a human message (its sweeper plans the removal of triggers this tool made earlier that are no longer
declared), `execute` runs them through the thin `scf` service, `command` ties it together for the CLI.
Nothing here is on the function's import path, and `python -m blueprint package` leaves it out of the zip.
"""
