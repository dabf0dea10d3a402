"""A fleet of TorchServe replicas behind nginx on one machine: started, supervised, managed from one place (its
command line: serving.fleet.cli, `python -m serving.fleet`).

state (fleet.json, the credential, which replica is alive), lifecycle (start and stop), supervisor (restarts a
replica that died), rollout (scale, set the default, promote, roll back), status (`status`, `describe`), proxy
(nginx), oip_edge (the v2 answers nginx gives itself), cli.
"""
