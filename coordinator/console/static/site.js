// The Site page (to be built).
