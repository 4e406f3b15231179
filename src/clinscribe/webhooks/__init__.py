"""Webhooks: clinics subscribe URLs to events; deliveries are signed, durable and retried.

endpoints.py   /api/webhooks: subscriptions, the delivery log, redelivery (admins)
service.py     subscription use cases
events.py      emit: the outbox rows, written in the transaction of the change they report
delivery.py    durable delivery: one short DBOS workflow per attempt, the next one a
               delayed queue entry; the dispatcher that starts the first
sending.py     one HTTP attempt: signed headers, pinned address, outcome
addresses.py   which URLs and addresses may receive deliveries
signing.py     HMAC-SHA256 signatures (and the receiver's check, as documented)
repository.py  all SQL for the tables above
"""
