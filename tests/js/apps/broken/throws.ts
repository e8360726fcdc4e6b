// Throws while the module is evaluated.
throw new Error("the module refuses to load");
