// The Source page (to be built).
