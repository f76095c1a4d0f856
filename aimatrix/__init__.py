"""AIMatrix: BPMN processes run by SpiffWorkflow inside durable Temporal workflows."""
