"""The HTTP door (`o2a api`): TMF622 Product Ordering, the AIA endpoint, the hub of event
listeners and the operator endpoints, all on the application service (o2a/service.py).

``app`` builds the ASGI application; ``auth`` the keys and roles; ``errors`` the TMF error
body every failure answers with; each router module is one resource family.
"""
