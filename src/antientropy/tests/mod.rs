mod cost;
mod exchange;
mod model;
mod tree;
