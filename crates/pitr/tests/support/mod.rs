pub mod archiving;
