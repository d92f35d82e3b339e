// The Candidates page (to be built).
