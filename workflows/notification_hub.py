"""NotificationHubWorkflow: the TMF622 hub of one deployment, the durable list of event
subscriptions (no database: the list lives in this workflow's state).

Subscribe and unsubscribe are updates whose validators refuse, with the reason, a taken ID,
an unreadable query or an unknown subscription, before anything is written to history.
Notifiers read the list by the ``subscriptions`` query, at most once a second each
(``o2a.notifications.SUBSCRIPTIONS_FRESH``), and match events themselves. The hub runs for
ever, handing its subscriptions on at continue-as-new.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from o2a.errors import InputError
    from o2a.subscriptions import EventFilter, check_callback, fanout
    from workflows.contracts.listener_delivery import END_SIGNAL, listener_workflow_id
    from workflows.contracts.notification_hub import (
        MATCHING_QUERY,
        SUBSCRIBE_UPDATE,
        SUBSCRIPTIONS_QUERY,
        UNSUBSCRIBE_UPDATE,
        WORKFLOW_TYPE,
        Fanout,
        HubState,
        Subscription,
        TmfEvent,
    )

MAX_SUBSCRIPTIONS = 1000
"""Every subscription travels in each continue-as-new and each ``subscriptions`` answer
(every notifier reads it, once a second at most)."""


@workflow.defn(name=WORKFLOW_TYPE)
class NotificationHubWorkflow:
    @workflow.init
    def __init__(self, state: HubState) -> None:
        self._subscriptions = {s.id: s for s in state.subscriptions}

    @workflow.run
    async def run(self, state: HubState) -> None:
        await workflow.wait_condition(lambda: workflow.info().is_continue_as_new_suggested())
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(HubState(subscriptions=list(self._subscriptions.values())))

    @workflow.update(name=SUBSCRIBE_UPDATE)
    def subscribe(self, subscription: Subscription) -> Subscription:
        self._subscriptions[subscription.id] = subscription
        return subscription

    @subscribe.validator
    def _may_subscribe(self, subscription: Subscription) -> None:
        if subscription.id in self._subscriptions:
            raise InputError(f"subscription {subscription.id} exists")
        if len(self._subscriptions) >= MAX_SUBSCRIPTIONS:
            raise InputError(f"the hub has its maximum of {MAX_SUBSCRIPTIONS} subscriptions")
        check_callback(subscription.callback)
        EventFilter.parse(subscription.query)

    @workflow.update(name=UNSUBSCRIBE_UPDATE)
    async def unsubscribe(self, subscription_id: str) -> None:
        """The listener's delivery workflow ends; it has none if it never had an event."""
        del self._subscriptions[subscription_id]
        listener = workflow.get_external_workflow_handle(listener_workflow_id(subscription_id))
        try:
            await listener.signal(END_SIGNAL)
        except ApplicationError:
            workflow.logger.info("subscription %s had no delivery running", subscription_id)

    @unsubscribe.validator
    def _may_unsubscribe(self, subscription_id: str) -> None:
        if subscription_id not in self._subscriptions:
            raise InputError(f"no subscription {subscription_id}")

    @workflow.query(name=SUBSCRIPTIONS_QUERY)
    def subscriptions(self) -> list[Subscription]:
        return list(self._subscriptions.values())

    @workflow.query(name=MATCHING_QUERY)
    def matching(self, events: list[TmfEvent]) -> list[Fanout]:
        """Asked for every CRM update by workers of builds before notifiers kept the list:
        answered while such a worker may still run beside this build. Remove it once no
        deployment runs a build from before commit b019687."""
        return fanout(list(self._subscriptions.values()), events)
