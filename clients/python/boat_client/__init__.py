"""Python client for the REST API of Boat, a Raft-replicated ML prediction serving cluster.

Standard library only. Point a :class:`Client` at any node: writes sent to
a follower are redirected (307) to the leader and re-sent there, and 503
answers during elections are retried (never for :meth:`Client.create_job`,
which must not create two jobs). Error answers raise :class:`BoatError`.

Usage::

    from boat_client import Client, BoatError

    admin = Client("http://127.0.0.1:8081", token=open("admin-token").read().strip())
    admin.create_user("dev@example.com", "s3cret-pass", "MODEL_DEVELOPER")
    dev = Client("http://127.0.0.1:8081")
    dev.login("dev@example.com", "s3cret-pass")
    dev.upload_model("iris", "models/mlp.onnx")
    print(dev.predict([[5.1, 3.5, 1.4, 0.2]], model="iris")["output"]["label"])  # [0]
    try:
        dev.list_users()
    except BoatError as e:
        print(e.status, e.message)  # 403 ...
"""

from .client import BoatError, Client

__all__ = ["Client", "BoatError"]
__version__ = "0.2.0"
