//! `DeviceStore` over the in-memory state: device authorizations and their user codes.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::MemoryStore;
use crate::error::{Error, StoreError};
use crate::grant::device_code::{
    DeviceAuthorization, DevicePoll, DevicePollStep, DeviceResolution, UserCode,
};
use crate::ports::{DeviceStore, StoreResult};
use crate::token::{TokenHash, is_live};

#[async_trait]
impl DeviceStore for MemoryStore {
    async fn insert(&self, rec: &DeviceAuthorization) -> StoreResult<()> {
        let mut s = self.lock()?;
        let now = self.clock.now();
        let taken = s
            .user_codes
            .get(&rec.user_code)
            .and_then(|h| s.devices.get(h))
            .is_some_and(|d| is_live(Some(d.expires_at), now));
        if taken {
            return Err(StoreError::Conflict("user code in use".into()));
        }
        s.user_codes.insert(rec.user_code.clone(), rec.device_hash);
        s.devices.insert(rec.device_hash, rec.clone());
        Ok(())
    }

    async fn find_by_user_code(&self, code: &UserCode) -> StoreResult<Option<DeviceAuthorization>> {
        let s = self.lock()?;
        Ok(s.user_codes
            .get(code)
            .and_then(|h| s.devices.get(h))
            .cloned())
    }

    async fn resolve(
        &self,
        code: &UserCode,
        resolution: &DeviceResolution,
    ) -> StoreResult<Result<DeviceAuthorization, Error>> {
        let mut s = self.lock()?;
        let hash = s.user_codes.get(code).copied();
        let current = hash.and_then(|h| s.devices.get(&h)).cloned();
        let next = resolution.apply(current.as_ref());
        if let (Ok(rec), Some(h)) = (&next, hash) {
            s.devices.insert(h, rec.clone());
        }
        Ok(next)
    }

    async fn poll(&self, device: &TokenHash, poll: &DevicePoll) -> StoreResult<DevicePollStep> {
        let mut s = self.lock()?;
        let step = poll.decide(s.devices.get(device));
        if let Some(w) = &step.write {
            s.devices.insert(*device, w.clone());
        }
        Ok(step)
    }

    async fn sweep_expired(&self, before: OffsetDateTime, batch: u32) -> StoreResult<u32> {
        let mut s = self.lock()?;
        let dead: Vec<TokenHash> = s
            .devices
            .values()
            .filter(|d| d.expires_at < before)
            .take(batch as usize)
            .map(|d| d.device_hash)
            .collect();
        for h in &dead {
            if let Some(d) = s.devices.remove(h) {
                s.user_codes.remove(&d.user_code);
            }
        }
        Ok(dead.len() as u32)
    }
}
