// The Night report page (to be built).
