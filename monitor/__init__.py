"""Live monitor: the policy that turns predictions into actions, the action sinks, the monitor's /metrics."""
