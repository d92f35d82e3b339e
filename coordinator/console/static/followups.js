// The Follow-ups page (to be built).
