"""The digital twin: a deployed BPMN process as a discrete-event simulation, calibrated from its audit history."""
